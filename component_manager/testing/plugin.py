"""pytest plugin (entry point ``component_manager``): fixtures for component tests.

Registered through the ``pytest11`` entry point, so installing the package is enough.

``realm_builder`` (async tests, pytest-asyncio): a RealmBuilder whose realms are all
destroyed at the end of the test, pass or fail::

    async def test_echo(realm_builder):
        realm_builder.add_child("server", url="components/echo/echo_server.cml")
        realm_builder.add_route(protocol="echo.Echo", source="#server", targets=["test"])
        realm_builder.add_route(storage="data", targets=["#server"])
        realm = await realm_builder.build()
        channel = await realm.connect("echo.Echo")

``cm_manager_factory``: a real manager on a realm you wrote yourself::

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
from .realm import RealmBuilder

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture then needs pytest-asyncio installed
    pytest_asyncio = None


@pytest.fixture
def cm_manager_factory():
    made: list[tuple[ManagerProcess, Path]] = []

    def make(root: str | None = None, args: tuple[str, ...] = (), env: dict | None = None) -> ManagerProcess:
        # A short path: Unix socket paths hold 108 bytes, pytest's tmp_path can be longer.
        folder = Path(tempfile.mkdtemp(prefix="cm-"))
        manager = ManagerProcess(folder / "state", root=root, args=args, env=env)
        made.append((manager, folder))
        return manager.start()

    yield make
    for manager, folder in made:
        try:
            manager.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def realm_builder():
        builder = RealmBuilder()
        try:
            yield builder
        finally:
            errors = []
            for realm in builder.realms:
                try:
                    await realm.destroy()
                except Exception as e:  # tear the others down anyway
                    errors.append(e)
            if errors:
                raise errors[0]
