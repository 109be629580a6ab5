"""pytest plugin (entry point ``component_manager``): fixtures for component tests.

Registered through the ``pytest11`` entry point, so installing the package is enough::

    def test_my_component(cm_manager_factory):
        manager = cm_manager_factory(root="my_realm.cml")   # started, serving
        manager.cm("start", "/server")
        assert manager.show("/server")["execution_state"] == "running"

Every manager made by the factory gets its own short temporary state directory; at the
end of the test (pass or fail) it is shut down, any program it left is killed, and the
directory is removed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from .process import ManagerProcess


@pytest.fixture
def cm_manager_factory():
    made: list[tuple[ManagerProcess, Path]] = []

    def make(root: str | None = None) -> ManagerProcess:
        # A short path: Unix socket paths hold 108 bytes, pytest's tmp_path can be longer.
        folder = Path(tempfile.mkdtemp(prefix="cm-"))
        manager = ManagerProcess(folder / "state", root=root)
        made.append((manager, folder))
        return manager.start()

    yield make
    for manager, folder in made:
        try:
            manager.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
