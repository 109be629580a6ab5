import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from component_manager.manifest.decl import ProgramDecl
from component_manager.runners.base import LaunchSpec
from component_manager.runners.startup import StartupInfo


@pytest.fixture
def pkg():
    """A short temporary package directory; ``pkg.module(name, source)`` writes a module."""
    path = Path(tempfile.mkdtemp(prefix="cm-"))

    class Pkg:
        dir = path

        def module(self, name: str, source: str) -> str:
            (path / f"{name}.py").write_text(textwrap.dedent(source))
            return name

        def spec(self, runner="python", log=None, extra_env=(), **program) -> LaunchSpec:
            startup = StartupInfo(moniker="/test/prog", instance_id="i1", component_address="",
                                  token="t0k")
            return LaunchSpec("/test/prog", "i1", ProgramDecl(runner=runner, **program), path,
                              log or path / "logs" / "prog.log", startup, tuple(extra_env))

    yield Pkg()
    shutil.rmtree(path, ignore_errors=True)

