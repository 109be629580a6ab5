"""A program launched held runs none of its code until released; a held program whose
manager goes away (its go pipe closes) exits 127 without running."""

import asyncio
import dataclasses

from component_manager.runners import get_runner
from component_manager.runners.base import ExitStatus


def run(coro, timeout: float = 20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_a_held_program_runs_only_once_released(pkg):
    pkg.module("marks", "print('ran', flush=True)")
    spec = dataclasses.replace(pkg.spec(module="marks"), held=True)

    async def body():
        program = await get_runner("python").launch(spec)
        identity = program.identity
        exited = asyncio.ensure_future(program.wait())
        done, _ = await asyncio.wait({exited}, timeout=0.3)  # held: it neither runs nor ends
        assert not done and "ran" not in (spec.log_path.read_text() if spec.log_path.exists() else "")
        program.release()
        status = await exited
        return status, identity, program.pid

    status, identity, pid = run(body())
    assert status == ExitStatus(exit_code=0)
    assert identity.pid == pid  # the shell execs the program in place: one process, one identity
    assert "ran" in spec.log_path.read_text()


def test_a_held_program_never_released_exits_unrun(pkg):
    pkg.module("marks", "print('ran', flush=True)")
    spec = dataclasses.replace(pkg.spec(module="marks"), held=True)

    async def body():
        program = await get_runner("python").launch(spec)
        program._close_go()  # what the manager's death does to the go pipe
        return await program.wait()

    assert run(body()) == ExitStatus(exit_code=127)
    assert "ran" not in spec.log_path.read_text()
