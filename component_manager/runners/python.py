"""The ``python`` runner: ``<the manager's interpreter> -m <module> *args``.

The interpreter is ``sys.executable`` (an absolute path), never ``python3`` from PATH: a
shell shim there costs ~85 ms per start (measured on these machines). The package directory
is prepended to ``PYTHONPATH`` and is the working directory, so
``module: "components.echo.server"`` is found in the component's own package. Output is unbuffered so that ``cm logs`` shows it as
it is printed (a program may set ``PYTHONUNBUFFERED`` in its ``env`` to change that).

Two ways to get there, with the same result for the program:

- **the zygote** (``zygote.py``, ``zygote_client.py``): a pre-warmed interpreter, started by
  the manager, that has imported grpc, protobuf and the SDK and forks the program (a few ms
  instead of ~100). Used whenever it is ready and can run the program faithfully;
- **a plain spawn** (``process.spawn``): the fallback, always correct. Used while the zygote
  is starting or dead, when it refuses (a program's ``PYTHON*``, locale or ``GRPC_*``
  variables differ from the manager's, its ``sys.path`` would shadow a preloaded module,
  ...), when the manager runs with ``CM_ZYGOTE=0``, and when no manager started a zygote
  (unit tests).

Example::

    program = await PythonRunner().launch(spec)   # module "components.counter.main"
    await program.wait()                          # ExitStatus(exit_code=0, signal=None)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import StartError
from . import get_runner
from .base import LaunchSpec, Program
from .process import limits_for, spawn
from .zygote_client import Zygote

__all__ = ["PythonRunner", "start_zygote", "stop_zygote"]


class PythonRunner:
    name = "python"

    def __init__(self):
        self.zygote = None  # a zygote_client.Zygote while a manager runs one

    async def launch(self, spec: LaunchSpec) -> Program:
        if not spec.program.module:
            raise StartError(spec.moniker, "the python runner needs program.module")
        env_defaults = _python_env(str(spec.package_dir))
        enforcement = limits_for(spec)
        if self.zygote is not None:
            program = await self.zygote.launch(spec, env_defaults, enforcement)
            if program is not None:
                return program
        argv = [sys.executable, "-m", spec.program.module, *spec.program.args]
        return await spawn(spec, argv, env_defaults, enforcement)


def start_zygote(log_path: Path):
    """Start the python runner's zygote (the manager does, once, at startup); it becomes
    ready in the background. Returns it. Call from the event loop that will use it."""
    runner = get_runner("python")
    if runner.zygote is None:
        runner.zygote = Zygote(log_path)
        runner.zygote.start()
    return runner.zygote


async def stop_zygote() -> None:
    """Stop the zygote, if one runs; later starts spawn. Idempotent."""
    runner = get_runner("python")
    zygote, runner.zygote = runner.zygote, None
    if zygote is not None:
        await zygote.stop()


def _python_env(package_dir: str) -> dict[str, str]:
    inherited = os.environ.get("PYTHONPATH", "")
    path = package_dir + (os.pathsep + inherited if inherited else "")
    return {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
