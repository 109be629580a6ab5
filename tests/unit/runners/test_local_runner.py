"""The ``local`` runner against a real launcher socket (the harness's LocalComponentRunner),
without a manager: launch, exit codes, signals, a lost connection, a bad entry."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from component_manager.errors import StartError
from component_manager.manifest.decl import ProgramDecl
from component_manager.runners.base import ExitStatus, LaunchSpec
from component_manager.runners.local import LocalRunner, parse_entry
from component_manager.runners.startup import StartupInfo
from component_manager.testing.realm import LocalComponentRunner


@pytest.fixture
async def launcher():
    folder = Path(tempfile.mkdtemp(prefix="cm-"))
    runner = LocalComponentRunner(folder / "l.sock")
    await runner.start()
    yield runner
    await runner.close()
    shutil.rmtree(folder, ignore_errors=True)


def spec(launcher: LocalComponentRunner, name: str) -> LaunchSpec:
    program = ProgramDecl(runner="local", entry=launcher.entry_prefix + name)
    startup = StartupInfo(moniker=f"/{name}", instance_id="0" * 64, component_address="", token="t")
    return LaunchSpec(f"/{name}", "0" * 64, program, Path("/"), Path("/dev/null"), startup)


async def test_exit_code_and_startup_reach_the_coroutine(launcher):
    seen = []

    async def main(ctx):
        seen.append(ctx.moniker)

    async def fails(ctx):
        raise ValueError("boom")

    launcher.mains.update(ok=main, bad=fails)
    assert await (await LocalRunner().launch(spec(launcher, "ok"))).wait() == ExitStatus(exit_code=0)
    assert seen == ["/ok"]
    assert await (await LocalRunner().launch(spec(launcher, "bad"))).wait() == ExitStatus(exit_code=1)


async def test_a_signal_cancels_and_a_lost_manager_cancels(launcher):
    cancelled = []

    async def forever(ctx):
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            cancelled.append(ctx.moniker)
            raise

    launcher.mains["f"] = forever
    program = await LocalRunner().launch(spec(launcher, "f"))
    assert program.pid == 0 and program.identity is None and not program.exited
    program.signal_group(signal.SIGTERM)
    assert await asyncio.wait_for(program.wait(), 10) == ExitStatus(signal=signal.SIGTERM)

    program = await LocalRunner().launch(spec(launcher, "f"))
    program._writer.close()  # the manager's side goes away
    await asyncio.wait_for(program.wait(), 10)
    await asyncio.wait({launcher.runs["/f"].task}, timeout=10)
    assert cancelled == ["/f", "/f"]


async def test_unknown_name_and_bad_entry_are_start_errors(launcher):
    with pytest.raises(StartError, match="no local component 'nope'"):
        await LocalRunner().launch(spec(launcher, "nope"))
    with pytest.raises(StartError, match="not 'unix:/path/to/socket#name'"):
        parse_entry("/x", "tests.fakes:main")
