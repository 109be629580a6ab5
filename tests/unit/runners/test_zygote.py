"""The python runner's zygote with real processes: a real zygote forks real programs, and what
each program sees must be what ``python -m`` would have given it."""

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from component_manager.runners.base import ExitStatus
from component_manager.runners.process import ChildProgram
from component_manager.runners.python import PythonRunner
from component_manager.runners.zygote_client import UNKNOWN_STATUS, Zygote, ZygoteProgram

pytestmark = pytest.mark.timeout(60)

READY_TIMEOUT_S = 30

# What a program can observe about how it was started; must be equal under both paths.
OBSERVE = """
    import json, os, signal, sys
    from component_manager.runners.startup import StartupInfo, ENV_STARTUP_FD
    info = StartupInfo.from_inherited_fd()
    env = dict(os.environ)
    env.pop(ENV_STARTUP_FD)
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    print("OBSERVED", json.dumps({
        "token": info.token, "argv": sys.argv, "orig_argv": sys.orig_argv, "cwd": os.getcwd(),
        "path": sys.path, "env": env, "name": __name__, "spec": __spec__.name,
        "own_group": os.getpgid(0) == os.getpid() == os.getsid(0),
        "signals": {s.name: str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM,
                    signal.SIGPIPE, signal.SIGCHLD, signal.SIGHUP, signal.SIGXFSZ)},
        "stdout": [sys.stdout.write_through, sys.stdout.line_buffering, sys.stdout.encoding,
                   sys.stdout.errors, sys.stderr.errors, sys.stdin.name, sys.stdout.buffer.name],
        "stdin_is_null": os.path.samefile("/proc/self/fd/0", os.devnull),
        "fds": len(fds), "main_is_us": sys.modules["__main__"].__file__ == __file__,
    }))
"""


@pytest.fixture
async def zygote(pkg):
    z = Zygote(pkg.dir / "zygote.log")
    z.start()
    assert await z.wait_ready(READY_TIMEOUT_S), (pkg.dir / "zygote.log").read_text()
    yield z
    await z.stop()


def runner_with(zygote) -> PythonRunner:
    runner = PythonRunner()
    runner.zygote = zygote
    return runner


async def launch(zygote, spec) -> ZygoteProgram:
    program = await runner_with(zygote).launch(spec)
    assert isinstance(program, ZygoteProgram), "expected the zygote to run it"
    return program


def observed(log: Path) -> dict:
    line = next(l for l in log.read_text().splitlines() if l.startswith("OBSERVED "))
    return json.loads(line.removeprefix("OBSERVED "))


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])


async def test_a_forked_program_sees_what_python_dash_m_would_give_it(zygote, pkg):
    pkg.module("observe", OBSERVE)
    env = (("FROM_PROGRAM", "yes"),)
    spec = lambda name: pkg.spec(module="observe", args=("a", "b c"), env=env,  # noqa: E731
                                 log=pkg.dir / f"{name}.log")
    spare_pid = await spare_of(zygote)
    # Two at once: the first goes to the spare, the second is forked on the spot.
    by_spare, fresh = await asyncio.gather(launch(zygote, spec("spare")), launch(zygote, spec("fresh")))
    assert by_spare.pid == spare_pid and fresh.pid != spare_pid
    for program in (by_spare, fresh):
        assert program.identity.pid == program.pid == program.identity.pgid
        assert await program.wait() == ExitStatus(exit_code=0)
    assert await (await PythonRunner().launch(spec("spawned"))).wait() == ExitStatus(exit_code=0)

    seen = {name: observed(pkg.dir / f"{name}.log") for name in ("spare", "fresh", "spawned")}
    assert seen["spare"] == seen["spawned"]
    assert seen["fresh"] == seen["spawned"]
    assert seen["spare"]["argv"] == [str(pkg.dir / "observe.py"), "a", "b c"]
    assert seen["spare"]["path"][0] == str(pkg.dir) and seen["spare"]["own_group"]
    assert seen["spare"]["stdout"][0] is True  # PYTHONUNBUFFERED: write-through


async def test_buffered_output_when_the_program_turns_unbuffered_off(zygote, pkg):
    pkg.module("observe", OBSERVE)
    env = (("PYTHONUNBUFFERED", ""),)
    forked = await launch(zygote, pkg.spec(module="observe", env=env, log=pkg.dir / "forked.log"))
    spawned = await PythonRunner().launch(pkg.spec(module="observe", env=env, log=pkg.dir / "spawned.log"))
    assert await forked.wait() == await spawned.wait() == ExitStatus(exit_code=0)
    by_zygote, by_spawn = observed(pkg.dir / "forked.log"), observed(pkg.dir / "spawned.log")
    assert by_zygote["stdout"] == by_spawn["stdout"]
    assert by_zygote["stdout"][:2] == [False, False]  # block-buffered, as Python makes a file


async def test_exit_codes_signals_and_exceptions_end_as_in_python(zygote, pkg):
    pkg.module("code3", "import sys; sys.exit(3)")
    pkg.module("message", "import sys; sys.exit('goodbye with a message')")
    pkg.module("none", "import sys; sys.exit(None)")
    pkg.module("raises", "def deep():\n    raise ValueError('boom')\ndeep()")
    pkg.module("interrupted", "raise KeyboardInterrupt")
    pkg.module("segv", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    pkg.module("missing_import", "import no_such_module_anywhere")
    expected = {"code3": ExitStatus(exit_code=3), "message": ExitStatus(exit_code=1),
                "none": ExitStatus(exit_code=0), "raises": ExitStatus(exit_code=1),
                "interrupted": ExitStatus(signal=signal.SIGINT), "segv": ExitStatus(signal=signal.SIGSEGV),
                "missing_import": ExitStatus(exit_code=1), "not_a_module": ExitStatus(exit_code=1)}
    specs = {name: pkg.spec(module=name, log=pkg.dir / f"{name}.log") for name in expected}
    programs = await asyncio.gather(*(launch(zygote, spec) for spec in specs.values()))
    statuses = await asyncio.gather(*(p.wait() for p in programs))
    assert dict(zip(expected, statuses)) == expected
    assert len({p.pid for p in programs}) == len(programs)

    log = specs["raises"].log_path.read_text()
    assert log.startswith("Traceback (most recent call last):")
    assert "ValueError: boom" in log and 'in deep' in log
    assert "zygote" not in log, "the zygote's own frames must not show in a program's traceback"
    assert "goodbye with a message" in specs["message"].log_path.read_text()
    assert "No module named not_a_module" in specs["not_a_module"].log_path.read_text()
    assert "ModuleNotFoundError" in specs["missing_import"].log_path.read_text()


async def test_a_program_is_signalled_as_a_group_and_reports_the_signal(zygote, pkg):
    pkg.module("blocks", "import signal; signal.pause()")
    program = await launch(zygote, pkg.spec(module="blocks"))
    assert not program.exited
    program.signal_group(signal.SIGTERM)
    assert await program.wait() == ExitStatus(signal=signal.SIGTERM)
    program.signal_group(signal.SIGKILL)  # gone: no error


async def test_output_is_unbuffered_and_threads_and_atexit_finish_before_the_exit(zygote, pkg):
    fifo = pkg.dir / "gate"
    os.mkfifo(fifo)
    pkg.module("slow_writer", f"""
        import atexit, sys, threading
        print("before the gate")
        print("to stderr", file=sys.stderr)
        open({str(fifo)!r}).read()   # blocks until the test has looked at the log
        atexit.register(lambda: print("atexit ran"))
        threading.Thread(target=lambda: print("thread joined")).start()
        sys.exit(4)
    """)
    spec = pkg.spec(module="slow_writer")
    program = await launch(zygote, spec)
    gate = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)  # returns once the program opened it
    assert spec.log_path.read_text() == "before the gate\nto stderr\n"
    assert not program.exited
    os.close(gate)
    assert await program.wait() == ExitStatus(exit_code=4)
    assert spec.log_path.read_text().splitlines()[2:] == ["thread joined", "atexit ran"]


async def test_the_zygote_has_one_thread_and_no_grpc_even_after_its_children_serve(zygote, pkg):
    pkg.module("grpc_user", """
        import asyncio, grpc
        async def main():
            server = grpc.aio.server()
            server.add_insecure_port("unix:" + __file__ + ".sock")
            await server.start()
            channel = grpc.aio.insecure_channel("unix:" + __file__ + ".sock")
            await channel.close()
            await server.stop(None)
        asyncio.run(main())
    """)
    program = await launch(zygote, pkg.spec(module="grpc_user"))
    assert await program.wait() == ExitStatus(exit_code=0)
    assert threads_of(zygote.pid) == 1  # also after its own gRPC warm-up, which did not fail:
    assert "warm-up" not in (pkg.dir / "zygote.log").read_text()
    links = [os.readlink(f"/proc/{zygote.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{zygote.pid}/fd")]
    assert sum(link.startswith("socket:") for link in links) <= 2, links  # control, spare's socket
    assert not [link for link in links if link.startswith("anon_inode:")], links  # no epoll, eventfd


async def test_what_the_zygote_cannot_run_faithfully_is_spawned(zygote, pkg):
    pkg.module("shows_seed", "import os; print('seed', os.environ['PYTHONHASHSEED'])")
    spec = pkg.spec(module="shows_seed", env=(("PYTHONHASHSEED", "7"),))
    program = await runner_with(zygote).launch(spec)
    assert isinstance(program, ChildProgram)
    assert await program.wait() == ExitStatus(exit_code=0)
    assert "seed 7" in spec.log_path.read_text()

    spec = pkg.spec(module="shows_seed", env=(("PYTHONHASHSEED", "7"), ("GRPC_VERBOSITY", "debug")))
    program = await runner_with(zygote).launch(spec)
    assert isinstance(program, ChildProgram), "GRPC_* acts when grpc is imported"
    assert await program.wait() == ExitStatus(exit_code=0)

    pkg.module("json", "raise SystemExit('the package json shadows the stdlib one')")
    pkg.module("uses_json", "import json, sys; sys.exit(json.loads('5'))")
    program = await runner_with(zygote).launch(pkg.spec(module="uses_json"))
    assert isinstance(program, ChildProgram), "its own json.py must win, as under python -m"
    assert await program.wait() == ExitStatus(exit_code=1)


async def test_a_killed_zygote_falls_back_to_spawn_and_is_restarted(zygote, pkg):
    pkg.module("quick", "pass")
    first_pid = zygote.pid
    os.kill(first_pid, signal.SIGKILL)
    await _until(lambda: not zygote.ready)

    program = await runner_with(zygote).launch(pkg.spec(module="quick"))
    assert isinstance(program, ChildProgram)
    assert await program.wait() == ExitStatus(exit_code=0)

    assert await zygote.wait_ready(READY_TIMEOUT_S)
    assert zygote.pid != first_pid
    program = await launch(zygote, pkg.spec(module="quick"))
    assert await program.wait() == ExitStatus(exit_code=0)


async def test_a_program_outliving_its_zygote_still_reports_its_end(zygote, pkg):
    fifo = pkg.dir / "running"
    os.mkfifo(fifo)
    pkg.module("blocks", f"import signal; open({str(fifo)!r}, 'w').close(); signal.pause()")
    program = await launch(zygote, pkg.spec(module="blocks"))
    with open(fifo):  # returns once the program runs (past the zygote's "go")
        pass
    os.kill(zygote.pid, signal.SIGKILL)
    await _until(lambda: not zygote.ready)
    assert not program.exited
    program.signal_group(signal.SIGKILL)
    assert await program.wait() == UNKNOWN_STATUS  # init reaped it: how it ended is lost


async def test_a_bad_request_gets_a_refusal_and_the_zygote_keeps_serving(zygote, pkg):
    for garbage in (b"not json", b"[1, 2]", json.dumps({"launch": 999}).encode()):
        zygote._sock.sendall(garbage)
    pkg.module("quick", "pass")
    program = await launch(zygote, pkg.spec(module="quick"))
    assert await program.wait() == ExitStatus(exit_code=0)
    assert "Traceback" not in zygote.log_path.read_text()


async def test_a_missing_package_dir_is_left_to_spawn_which_reports_it(zygote, pkg, tmp_path):
    from component_manager.errors import StartError

    spec = pkg.spec(module="anything")
    spec = type(spec)(**{**{f: getattr(spec, f) for f in spec.__dataclass_fields__},
                         "package_dir": tmp_path / "gone"})
    with pytest.raises(StartError, match="gone"):
        await runner_with(zygote).launch(spec)
    assert zygote.ready


async def test_a_zygote_that_never_gets_ready_is_given_up_after_three_tries(pkg, monkeypatch):
    monkeypatch.setattr("sys.executable", "/bin/false")  # exits at once, never says ready
    zygote = Zygote(pkg.dir / "zygote.log")
    zygote.start()
    await _until(lambda: zygote.given_up)
    zygote.start()
    assert zygote.pid is None and not zygote.ready
    monkeypatch.undo()
    pkg.module("quick", "pass")
    program = await runner_with(zygote).launch(pkg.spec(module="quick"))
    assert isinstance(program, ChildProgram)
    assert await program.wait() == ExitStatus(exit_code=0)
    await zygote.stop()


async def spare_of(zygote, timeout: float = 10.0) -> int:
    """The pid of the zygote's spare child, once it has forked one (after a short idle time)."""
    children = Path(f"/proc/{zygote.pid}/task/{zygote.pid}/children")
    async with asyncio.timeout(timeout):
        while not children.read_text().split():
            await asyncio.sleep(0.005)
    return int(children.read_text().split()[0])


async def _until(condition, timeout: float = 10.0) -> None:
    """Wait for a condition the event loop makes true (the zygote's EOF is handled there)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)
