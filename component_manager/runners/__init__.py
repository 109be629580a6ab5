"""Runners: how the manager launches a program (see ``base.py`` for the protocol).

    python   ``sys.executable -m module`` in its own process group      (python.py)
    process  any executable, relative to the package directory          (process.py)
    inproc   a coroutine function run as a task in the manager's loop   (inproc.py)
    local    a coroutine in a test process, launched over its socket    (local.py)

Example::

    program = await get_runner("python").launch(spec)

Everything here is imported on first use: a component program imports
``runners.startup`` through the SDK and must not pay for the runners themselves.
"""

from __future__ import annotations

import importlib

__all__ = [
    "RUNNERS",
    "ExitStatus",
    "LaunchSpec",
    "ProcessIdentity",
    "Program",
    "Runner",
    "get_runner",
]

_FROM_BASE = {"ExitStatus", "LaunchSpec", "ProcessIdentity", "Program", "Runner"}


def _make_runners() -> dict:
    from .inproc import InprocRunner
    from .local import LocalRunner
    from .process import ProcessRunner
    from .python import PythonRunner

    runners = (PythonRunner(), ProcessRunner(), InprocRunner(), LocalRunner())
    return {runner.name: runner for runner in runners}


def get_runner(name: str):
    """The runner called ``name``. Raises StartError naming the known runners."""
    from ..errors import StartError

    runners = globals().get("RUNNERS") or __getattr__("RUNNERS")  # made once: runners keep state
    try:
        return runners[name]
    except KeyError:
        raise StartError("", f"unknown runner {name!r} (known: {', '.join(sorted(runners))})") from None


def __getattr__(name: str):
    if name == "RUNNERS":
        globals()["RUNNERS"] = runners = _make_runners()
        return runners
    if name in _FROM_BASE:
        return getattr(importlib.import_module(".base", __name__), name)
    if name in ("procinfo", "process", "python", "inproc", "local", "base", "startup"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
