"""The inproc runner: a coroutine function as a program."""

import asyncio
import signal

import pytest

from component_manager.errors import StartError
from component_manager.runners import get_runner
from component_manager.runners.base import ExitStatus

ENTRIES = """
import asyncio
seen = []
async def returns(startup):
    seen.append(startup.moniker)
async def fails(startup):
    raise ValueError("boom")
async def forever(startup):
    await asyncio.Event().wait()
def not_async(startup):
    pass
"""


def run(coro, timeout: float = 20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def entries(pkg, monkeypatch):
    pkg.module("inproc_entries", ENTRIES)
    monkeypatch.syspath_prepend(str(pkg.dir))
    return pkg


def _launch_and_wait(pkg, entry, sig=None):
    async def body():
        program = await get_runner("inproc").launch(pkg.spec(runner="inproc", entry=entry))
        assert program.pid == 0 and program.identity is None
        if sig is not None:
            await asyncio.sleep(0)
            program.signal_group(sig)
            program.signal_group(signal.SIGKILL)  # the first signal is the one reported
        return await asyncio.gather(program.wait(), program.wait())

    return run(body())


def test_a_normal_return_is_exit_code_0(entries):
    assert _launch_and_wait(entries, "inproc_entries:returns") == [ExitStatus(exit_code=0)] * 2
    import inproc_entries
    assert inproc_entries.seen == ["/test/prog"]


def test_an_exception_is_exit_code_1(entries):
    assert _launch_and_wait(entries, "inproc_entries:fails") == [ExitStatus(exit_code=1)] * 2


def test_sigterm_cancels_and_is_reported_as_the_signal(entries):
    assert _launch_and_wait(entries, "inproc_entries:forever", signal.SIGTERM) == [
        ExitStatus(signal=signal.SIGTERM)] * 2


@pytest.mark.parametrize("entry, message", [
    ("no_colon", "is not 'package.module:function'"),
    ("inproc_entries:missing", "cannot load"),
    ("no_such_module:f", "cannot load"),
    ("inproc_entries:not_async", "not a coroutine function"),
])
def test_a_bad_entry_is_a_start_error(entries, entry, message):
    with pytest.raises(StartError, match=message):
        run(get_runner("inproc").launch(entries.spec(runner="inproc", entry=entry)))
