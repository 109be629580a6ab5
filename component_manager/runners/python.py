"""The ``python`` runner: ``<the manager's interpreter> -m <module> *args``.

The interpreter is ``sys.executable`` (an absolute path), never ``python3`` from PATH: a
shell shim there costs ~85 ms per start (FACTS.md). The package directory is prepended to
``PYTHONPATH`` and is the working directory, so ``module: "components.echo.server"`` is
found in the component's own package. Output is unbuffered so that ``cm logs`` shows it as
it is printed (a program may set ``PYTHONUNBUFFERED`` in its ``env`` to change that).

Example::

    program = await PythonRunner().launch(spec)   # module "components.counter.main"
    await program.wait()                          # ExitStatus(exit_code=0, signal=None)
"""

from __future__ import annotations

import os
import sys

from ..errors import StartError
from .base import LaunchSpec
from .process import ChildProgram, spawn

__all__ = ["PythonRunner"]


class PythonRunner:
    name = "python"

    async def launch(self, spec: LaunchSpec) -> ChildProgram:
        if not spec.program.module:
            raise StartError(spec.moniker, "the python runner needs program.module")
        argv = [sys.executable, "-m", spec.program.module, *spec.program.args]
        return await spawn(spec, argv, _python_env(str(spec.package_dir)))


def _python_env(package_dir: str) -> dict[str, str]:
    inherited = os.environ.get("PYTHONPATH", "")
    path = package_dir + (os.pathsep + inherited if inherited else "")
    return {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
