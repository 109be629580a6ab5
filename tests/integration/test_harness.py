"""The test harness itself (component_manager.testing): realms with real and local
components, the test as a component, event matchers, faults, and teardown that leaves
nothing behind even when the test fails."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from component_manager.testing import (RealmBuilder, capability_requested, pid_alive, restarted,
                                       started, stopped)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ECHO_SERVER = str(ROOT / "components" / "echo" / "echo_server.cml")


def echo_realm(builder: RealmBuilder, client=None) -> None:
    builder.add_child("server", url=ECHO_SERVER)
    targets = ["test"]
    if client is not None:
        builder.add_local_child("client", main=client)
        targets.append("#client")
    builder.add_route(protocol="echo.Echo", source="#server", targets=targets)
    builder.add_route(storage="data", targets=["#server"])


async def call_echo(channel, text: bytes) -> bytes:
    return await channel.unary_unary("/echo.Echo/Echo")(text)


async def test_local_client_calls_the_real_echo_server(realm_builder):
    replies = []

    async def client(ctx):
        replies.append(await call_echo(await ctx.connect("echo.Echo"), b"hi"))

    echo_realm(realm_builder, client)
    realm = await realm_builder.build()
    await realm.start("/client")
    await realm.wait_for(capability_requested("/server", capability="echo.Echo", client="/client"))
    await realm.wait_for(started("/server"))
    await realm.wait_for(stopped("/client", reason="exited", exit_code=0))
    assert replies == [b"hello: hi"]
    client_run = await realm.show("/client")
    assert client_run["last_stop"]["reason"] == "exited"


async def test_the_test_connects_and_the_server_stops_when_idle(realm_builder):
    echo_realm(realm_builder)
    async with realm_builder.build() as realm:
        channel = await realm.connect("echo.Echo")
        assert await call_echo(channel, b"one") == b"hello: one"
        assert await call_echo(channel, b"two") == b"hello: two"
        start = await realm.wait_for(started("/server"))
        assert "'/test_driver' requested capability 'echo.Echo'" in start["reason"]
        idle = await realm.wait_for(stopped("/server", reason="idle", disposition="stopped"), timeout=30)
        assert idle["instance_id"] == start["instance_id"]


async def test_killed_programs_are_recorded_as_crashed(realm_builder):
    cancelled = asyncio.Event()

    async def waits_forever(ctx):
        try:
            await ctx.wait_for_stop()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    echo_realm(realm_builder)
    realm_builder.add_local_child("sleeper", main=waits_forever)
    realm = await realm_builder.build()
    await call_echo(await realm.connect("echo.Echo"), b"wake up")
    server = await realm.show("/server")
    assert realm.kill_program("/server") == server["pid"]
    crash = await realm.wait_for(stopped("/server", reason="crashed", signal=9))
    assert crash["stop"]["disposition"] in ("killed", "stopped")
    assert not pid_alive(server["pid"])

    await realm.start("/sleeper")
    assert realm.kill_program("/sleeper") == 0
    await realm.wait_for(stopped("/sleeper", reason="crashed", signal=9))
    await asyncio.wait_for(cancelled.wait(), 10)


async def test_local_callable_hooks_and_a_crash_restarted(realm_builder):
    seen = []

    async def pre_start(env):
        seen.append(("pre_start", env["CM_MONIKER"]))
        if len(seen) == 1:
            raise RuntimeError("the migration is not ready")

    async def post_stop(env):
        seen.append(("post_stop", env["CM_STOP_REASON"]))

    async def waits(ctx):
        await ctx.wait_for_stop()

    realm_builder.add_local_child("svc", main=waits, pre_start=pre_start, post_stop=post_stop,
                                  program={"restart": {"policy": "on_failure", "initial_delay": "0s"}})
    realm = await realm_builder.build()
    failed = await realm.cm("start", "/svc", check=False)
    assert failed.returncode != 0 and "RuntimeError: the migration is not ready" in failed.stderr
    await realm.wait_for(stopped("/svc", reason="start_failed"))
    await realm.wait_for(restarted("/svc", attempt=1))  # a failed start is a failure: restarted
    realm.crash_program("/svc")
    await realm.wait_for(stopped("/svc", reason="crashed"))
    await realm.wait_for(restarted("/svc", attempt=2, after="crashed"))
    assert seen[:3] == [("pre_start", "/svc"), ("pre_start", "/svc"), ("post_stop", "crashed")], seen


async def test_restart_manager_keeps_instances_and_adopts_programs(realm_builder):
    echo_realm(realm_builder)
    realm = await realm_builder.build()
    assert await call_echo(await realm.connect("echo.Echo"), b"before") == b"hello: before"
    before = await realm.show("/server")
    old_manager = realm.manager.process.pid

    await realm.restart_manager(kill=True)
    assert realm.manager.process.pid != old_manager
    after = await realm.show("/server")
    assert (after["instance_id"], after["pid"]) == (before["instance_id"], before["pid"]), \
        "the new manager adopts what the dead one left running"
    # The test is a local component: it ended with its manager, and is one of the new manager
    # now. It connects again, to the same server.
    assert await call_echo(await realm.connect("echo.Echo"), b"after") == b"hello: after"
    assert (await realm.show("/server"))["pid"] == before["pid"]


async def test_destroy_removes_everything(realm_builder):
    echo_realm(realm_builder)
    realm = await realm_builder.build()
    await call_echo(await realm.connect("echo.Echo"), b"x")
    server = (await realm.show("/server"))["pid"]
    manager = realm.manager.process.pid
    await realm.destroy()
    assert not pid_alive(manager) and not pid_alive(server)
    assert not realm.folder.exists()
    await realm.destroy()  # idempotent


FAILING_TEST = '''
import json, os
import pytest
from component_manager.testing import started

pytestmark = pytest.mark.asyncio

async def test_fails_midway(realm_builder):
    async def client(ctx):
        await ctx.connect("echo.Echo")
        await ctx.wait_for_stop()

    realm_builder.add_child("server", url={server!r})
    realm_builder.add_local_child("client", main=client)
    realm_builder.add_route(protocol="echo.Echo", source="#server", targets=["#client", "test"])
    realm_builder.add_route(storage="data", targets=["#server"])
    realm = await realm_builder.build()
    await realm.start("/client")
    await realm.wait_for(started("/server"))  # the client's connect started it
    server = await realm.show("/server")
    with open({record!r}, "w") as f:
        json.dump({{"manager": realm.manager.process.pid, "programs": [server["pid"]],
                   "folder": str(realm.folder), "state_dir": str(realm.state_dir)}}, f)
    assert server["execution_state"] == "paused", "failing on purpose: it is running"
'''


def run_pytest(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(path.parent)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_failing_harness_test_leaves_no_process_and_keeps_its_folder(tmp_path):
    record = tmp_path / "record.json"
    test_file = tmp_path / "test_fails.py"
    test_file.write_text(FAILING_TEST.format(server=ECHO_SERVER, record=str(record)))
    result = run_pytest(test_file, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failing on purpose" in result.stdout
    seen = json.loads(record.read_text())
    assert not pid_alive(seen["manager"])
    assert seen["programs"] and not any(pid_alive(pid) for pid in seen["programs"])
    folder = Path(seen["folder"])
    try:  # kept for a person to look at, and the report says where
        assert (Path(seen["state_dir"]) / "manager.log").exists()
        assert not (Path(seen["state_dir"]) / "manager.sock").exists()
        assert f"kept for you to look at:\n  {folder}" in result.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_guide_example_runs_as_written(tmp_path):
    guide = (ROOT / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    example = next(b for b in blocks if "def test_" in b)
    (tmp_path / "test_guide_example.py").write_text(textwrap.dedent(example))
    result = run_pytest(tmp_path / "test_guide_example.py", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[1-9]\d* passed", result.stdout)
