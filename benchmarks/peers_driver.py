"""Runs INSIDE benchmarks/.peers-venv (supervisor and circus installed there, not in the
project): start N copies of ``sleep 3600`` under supervisord or circusd, stop them, R times,
and time ``supervisorctl status`` / ``circusctl status``. Prints one JSON object.

    .peers-venv/bin/python peers_driver.py supervisor N REPS WORKDIR SLEEP
    .peers-venv/bin/python peers_driver.py circus N REPS WORKDIR SLEEP
    .peers-venv/bin/python peers_driver.py supervisor_crash REPS WORKDIR PROGRAM...

supervisor: ``startAllProcesses(wait=True)`` over XML-RPC with ``startsecs=0`` (returns once
every program is RUNNING) and ``stopAllProcesses(wait=True)``. circus: ``start`` each watcher by name
(``autostart = False``), then poll ``status`` until every one is ``active``; one ``stop`` (all watchers), then poll until every one is
``stopped``. The daemons run in the foreground as our children and are killed afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
clock = time.perf_counter


def wait_for(check, timeout: float = 20.0, period: float = 0.005, show=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # the daemon is not up yet
            last = e
        time.sleep(period)
    raise TimeoutError(f"peer daemon did not get there (last error {last!r}; {show() if show else ''})")


def timed_cmd(argv: list[str], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = clock()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(clock() - t0)
    return out


def supervisor(n: int, reps: int, work: Path, sleep: str) -> dict:
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    sock = work / "sv.sock"
    conf = work / "supervisord.conf"
    lines = [
        "[unix_http_server]", f"file={sock}", "",
        "[supervisord]", f"logfile={work}/supervisord.log", f"pidfile={work}/supervisord.pid",
        f"childlogdir={work}", "nodaemon=true", "loglevel=warn", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{sock}", "",
    ]
    for i in range(n):
        lines += [f"[program:p{i}]", f"command={sleep} 3600", "autostart=false", "autorestart=false",
                  "startsecs=0", ""]
    conf.write_text("\n".join(lines))
    daemon = subprocess.Popen([str(BIN / "supervisord"), "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def connect():  # a new proxy each try: a transport that failed once stays failed
            return xmlrpc.client.ServerProxy("http://127.0.0.1",
                                             transport=SupervisorTransport(None, None, f"unix://{sock}"))

        wait_for(lambda: connect().supervisor.getState()["statename"] == "RUNNING")
        proxy = connect()
        start, stop = [], []
        status = None
        for rep in range(reps):
            t0 = clock()
            proxy.supervisor.startAllProcesses(True)
            start.append(clock() - t0)
            assert all(p["statename"] == "RUNNING" for p in proxy.supervisor.getAllProcessInfo())
            if rep == 0:  # supervisorctl status with all N running
                status = timed_cmd([str(BIN / "supervisorctl"), "-c", str(conf), "status"], 10)
            t0 = clock()
            proxy.supervisor.stopAllProcesses(True)
            stop.append(clock() - t0)
        return {"version": _version("supervisor"), "start_s": start, "stop_s": stop, "status_s": status}
    finally:
        _end(daemon)


def supervisor_crash(reps: int, work: Path, argv: list[str]) -> dict:
    """``autorestart=true``: SIGSEGV the program, time until supervisord has it RUNNING
    again (a new pid; ``startsecs=0``, so RUNNING means spawned), REPS times."""
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    sock = work / "svc.sock"
    conf = work / "supervisord-crash.conf"
    conf.write_text("\n".join([
        "[unix_http_server]", f"file={sock}", "",
        "[supervisord]", f"logfile={work}/supervisord-crash.log", f"pidfile={work}/supervisord-crash.pid",
        f"childlogdir={work}", "nodaemon=true", "loglevel=warn", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[program:target]", f"command={' '.join(argv)}", "autostart=true", "autorestart=true",
        "startsecs=0", "startretries=1000", f"directory={os.getcwd()}", "",
    ]))
    daemon = subprocess.Popen([str(BIN / "supervisord"), "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proxy = None

        def info():
            nonlocal proxy
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1",
                                              transport=SupervisorTransport(None, None, f"unix://{sock}"))
            return proxy.supervisor.getProcessInfo("target")

        wait_for(lambda: info()["statename"] == "RUNNING")
        times = []
        for _ in range(reps):
            pid = proxy.supervisor.getProcessInfo("target")["pid"]
            t0 = clock()
            os.kill(pid, signal.SIGSEGV)
            wait_for(lambda: (lambda i: i["statename"] == "RUNNING" and i["pid"] != pid)(
                proxy.supervisor.getProcessInfo("target")), period=0.0005)
            times.append(clock() - t0)
            time.sleep(0.05)
        return {"version": _version("supervisor"), "restart_s": times}
    finally:
        _end(daemon)


def circus(n: int, reps: int, work: Path, sleep: str) -> dict:
    from circus.client import CircusClient

    endpoint = f"ipc://{work}/ctl.sock"
    conf = work / "circus.ini"
    lines = ["[circus]", f"endpoint = {endpoint}", f"pubsub_endpoint = ipc://{work}/pub.sock",
             "statsd = False", "check_delay = 1", "loglevel = WARNING", ""]
    for i in range(n):
        lines += [f"[watcher:p{i}]", f"cmd = {sleep} 3600", "numprocesses = 1", "autostart = False",
                  "copy_env = True", ""]
    conf.write_text("\n".join(lines))
    daemon = subprocess.Popen([str(BIN / "circusd"), str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    client = CircusClient(endpoint=endpoint, timeout=30)
    try:
        wait_for(lambda: client.call({"command": "list", "properties": {}})["status"] == "ok")

        def statuses():
            return client.call({"command": "status", "properties": {}})["statuses"]

        start, stop = [], []
        status = None
        for rep in range(reps):
            t0 = clock()
            for i in range(n):  # autostart=False watchers start only by name
                command(client, "start", f"p{i}")
            wait_for(lambda: all(s == "active" for s in statuses().values()), period=0.002, show=statuses)
            start.append(clock() - t0)
            if rep == 0:
                status = timed_cmd([str(BIN / "circusctl"), "--endpoint", endpoint, "status"], 10)
            t0 = clock()
            client.call({"command": "stop", "properties": {}})  # every watcher, one command
            wait_for(lambda: all(s == "stopped" for s in statuses().values()), period=0.002)
            stop.append(clock() - t0)
        return {"version": _version("circus"), "start_s": start, "stop_s": stop, "status_s": status}
    finally:
        client.stop()
        _end(daemon)


def command(client, verb: str, name: str) -> None:
    """One circus command; circus refuses a command while another is still in progress
    ("arbiter is already running ..."), so retry until it is taken."""
    for _ in range(10000):
        reply = client.call({"command": verb, "properties": {"name": name}})
        if reply.get("status") == "ok":
            return
        time.sleep(0.001)
    raise RuntimeError(f"circus {verb} {name}: {reply}")


def _end(daemon: subprocess.Popen) -> None:
    """SIGTERM (both daemons then stop their programs), SIGKILL if it hangs."""
    daemon.terminate()
    try:
        daemon.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    if sys.argv[1] == "supervisor_crash":
        print(json.dumps(supervisor_crash(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])))
        sys.exit(0)
    kind, n, reps, work, sleep = sys.argv[1:6]
    result = {"supervisor": supervisor, "circus": circus}[kind](int(n), int(reps), Path(work), sleep)
    print(json.dumps(result))
