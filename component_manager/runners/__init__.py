"""Runners: how the manager launches a program (see ``base.py`` for the protocol).

    python   ``sys.executable -m module`` in its own process group      (python.py)
    process  any executable, relative to the package directory          (process.py)
    inproc   a coroutine function run as a task in the manager's loop   (inproc.py)
    local    a coroutine in a test process, launched over its socket    (local.py)
    ray      a python module on a Ray node, supervised by an actor      (ray_runner.py)

Example::

    program = await get_runner("python").launch(spec)

Everything here is imported on first use: a component program imports
``runners.startup`` through the SDK and must not pay for the runners themselves.
"""

from __future__ import annotations

import functools

from ..errors import StartError

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


@functools.cache  # made once: runners keep state
def _runners() -> dict:
    from .inproc import InprocRunner
    from .local import LocalRunner
    from .process import ProcessRunner
    from .python import PythonRunner
    from .ray_runner import RayRunner  # imports no Ray: that happens at --ray

    runners = (PythonRunner(), ProcessRunner(), InprocRunner(), LocalRunner(), RayRunner())
    return {runner.name: runner for runner in runners}


def get_runner(name: str):
    """The runner called ``name``. Raises StartError naming the known runners."""
    runners = _runners()
    try:
        return runners[name]
    except KeyError:
        raise StartError("", f"unknown runner {name!r} (known: {', '.join(sorted(runners))})") from None


def __getattr__(name: str):
    # RUNNERS and base's names load on first use (PEP 562). Speed: imported at the top, they
    # add the runners and the manifest package to every program that imports the SDK:
    # cold_lazy_start 13.9 -> 15.2 ms (+9%), its hand-spawned baseline 87 -> 160 ms (+84%).
    if name == "RUNNERS":
        return _runners()
    if name in _FROM_BASE:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
