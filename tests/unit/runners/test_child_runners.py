"""The python and process runners with real processes."""

import asyncio
import dataclasses
import os
import signal
import stat

import pytest

from component_manager.errors import StartError
from component_manager.runners import RUNNERS, get_runner
from component_manager.runners.base import ExitStatus


def run(coro, timeout: float = 20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _pidfd_exited(pid: int, timeout: float) -> None:
    """Wait (event-driven) until ``pid`` has ended; a pidfd becomes readable at exit."""
    fd = os.pidfd_open(pid)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def test_registry_has_the_five_runners():
    assert sorted(RUNNERS) == ["inproc", "local", "process", "python", "ray"]
    with pytest.raises(StartError, match="unknown runner 'java'"):
        get_runner("java")


def test_python_runner_logs_output_reads_startup_and_returns_exit_code(pkg):
    pkg.module("tiny", """
        import os, sys
        from component_manager.runners.startup import StartupInfo
        info = StartupInfo.from_inherited_fd()
        print("hello", info.moniker, info.token, os.getcwd(), os.environ["FROM_PROGRAM"], sys.argv[1:])
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """)
    spec = pkg.spec(module="tiny", args=("a", "b"), env=(("FROM_PROGRAM", "yes"),))
    spec.log_path.parent.mkdir()
    spec.log_path.write_text("earlier run\n")

    async def body():
        program = await get_runner("python").launch(spec)
        assert program.identity.pid == program.pid == program.identity.pgid
        statuses = await asyncio.gather(program.wait(), program.wait(), program.wait())
        assert program.exited
        return statuses

    assert run(body()) == [ExitStatus(exit_code=3)] * 3
    log = spec.log_path.read_text()
    assert log.startswith("earlier run\n")  # appended, not truncated
    assert f"hello /test/prog t0k {pkg.dir} yes ['a', 'b']" in log
    assert "to stderr" in log


def test_a_cancelled_waiter_does_not_cancel_other_waiters(pkg):
    pkg.module("blocks", "import signal; signal.pause()")

    async def body():
        program = await get_runner("python").launch(pkg.spec(module="blocks"))
        impatient = asyncio.ensure_future(program.wait())
        patient = asyncio.ensure_future(program.wait())
        await asyncio.sleep(0)
        impatient.cancel()
        program.signal_group(signal.SIGTERM)
        return await patient

    assert run(body()) == ExitStatus(signal=signal.SIGTERM)


def test_a_program_killed_by_a_signal_reports_that_signal(pkg):
    pkg.module("crash", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")

    async def body():
        program = await get_runner("python").launch(pkg.spec(module="crash"))
        return await program.wait()

    status = run(body())
    assert status == ExitStatus(signal=signal.SIGKILL)
    assert status.signal_name == "SIGKILL"


def test_signal_group_reaches_a_grandchild(pkg):
    fifo = pkg.dir / "pids"
    os.mkfifo(fifo)
    pkg.module("parent", """
        import os, signal, subprocess
        child = subprocess.Popen(["sleep", "60"])
        with open(os.environ["PID_FIFO"], "w") as f:
            f.write(str(child.pid))
        signal.pause()
    """)

    async def body():
        program = await get_runner("python").launch(pkg.spec(module="parent", extra_env=[("PID_FIFO", str(fifo))]))
        loop = asyncio.get_running_loop()
        grandchild = int(await loop.run_in_executor(None, fifo.read_text))
        exited = asyncio.ensure_future(_pidfd_exited(grandchild, 10))
        await asyncio.sleep(0)
        program.signal_group(signal.SIGKILL)
        status = await program.wait()
        await exited
        program.signal_group(signal.SIGKILL)  # the group is gone: no error
        return status

    assert run(body()) == ExitStatus(signal=signal.SIGKILL)


def test_process_runner_runs_a_binary_relative_to_the_package(pkg):
    script = pkg.dir / "bin" / "hello.sh"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\necho "hello $1 from $(pwd) fd=$CM_STARTUP_FD"\nexit 7\n')
    script.chmod(0o755)
    spec = pkg.spec(runner="process", binary="bin/hello.sh", args=("world",))

    async def body():
        program = await get_runner("process").launch(spec)
        return await program.wait()

    assert run(body()) == ExitStatus(exit_code=7)
    assert f"hello world from {pkg.dir} fd=" in spec.log_path.read_text()


def test_process_runner_accepts_an_absolute_binary(pkg):
    spec = pkg.spec(runner="process", binary="/bin/true")

    async def body():
        return await (await get_runner("process").launch(spec)).wait()

    assert run(body()) == ExitStatus(exit_code=0)


def test_a_missing_binary_is_a_start_error_with_the_moniker(pkg):
    with pytest.raises(StartError) as caught:
        run(get_runner("process").launch(pkg.spec(runner="process", binary="bin/missing")))
    assert caught.value.moniker == "/test/prog"
    assert "bin/missing" in caught.value.reason
    assert "No such file" in caught.value.reason


def test_a_file_that_is_not_executable_is_a_start_error(pkg):
    (pkg.dir / "data.txt").write_text("not a program")
    (pkg.dir / "data.txt").chmod(stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(StartError, match="Permission denied"):
        run(get_runner("process").launch(pkg.spec(runner="process", binary="data.txt")))


def test_a_missing_package_directory_is_a_start_error(pkg):
    spec = pkg.spec(module="tiny")
    object.__setattr__(spec, "package_dir", pkg.dir / "gone")
    with pytest.raises(StartError, match="gone"):
        run(get_runner("python").launch(spec))


def test_the_startup_pipe_holds_large_startup_info(pkg):
    pkg.module("reads", """
        from component_manager.runners.startup import StartupInfo
        print(len(StartupInfo.from_inherited_fd().storage["big"]))
    """)
    spec = pkg.spec(module="reads")
    object.__setattr__(spec.startup, "storage", {"big": "x" * 200_000})

    async def body():
        return await (await get_runner("python").launch(spec)).wait()

    assert run(body()) == ExitStatus(exit_code=0)
    assert "200000" in spec.log_path.read_text()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_program_reports_serving_on_its_startup_socket(pkg):
    pkg.module("serves", """
        import socket, sys, threading
        from component_manager.runners.startup import SERVING, inherited_startup
        info, fd = inherited_startup()
        print("startup for", info.moniker, flush=True)
        with socket.socket(fileno=fd) as s:
            s.send(SERVING)
        threading.Event().wait()
    """)

    async def body():
        loop = asyncio.get_running_loop()
        heard = loop.create_future()
        spec = dataclasses.replace(pkg.spec(module="serves"), on_serving=lambda: heard.set_result(True))
        program = await get_runner("python").launch(spec)
        await asyncio.wait_for(heard, 15)
        program.signal_group(signal.SIGKILL)
        await program.wait()

    run(body())
    assert "startup for /test/prog" in pkg.spec().log_path.read_text()


def test_a_program_that_never_serves_leaves_no_descriptor_behind(pkg):
    pkg.module("quiet", "import sys; sys.exit(0)")

    async def body():
        before = _open_fds()
        spec = dataclasses.replace(pkg.spec(module="quiet"), on_serving=lambda: pytest.fail("it never served"))
        program = await get_runner("python").launch(spec)
        assert await program.wait() == ExitStatus(exit_code=0)
        for _ in range(100):  # the EOF on our end is handled by the loop, after the exit
            if _open_fds() <= before:
                break
            await asyncio.sleep(0.01)
        assert _open_fds() <= before

    run(body())


def test_startup_info_too_large_to_pass_is_a_start_error_not_a_hang(pkg):
    pkg.module("never_runs", "raise SystemExit('must not run')")
    spec = pkg.spec(module="never_runs")
    huge = dataclasses.replace(spec.startup, storage={"data": "x" * (8 << 20)})  # over any socket buffer
    with pytest.raises(StartError, match="cannot pass the startup info"):
        run(get_runner("python").launch(dataclasses.replace(spec, startup=huge)))
