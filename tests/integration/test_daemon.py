"""The manager as a daemon: detached runs, one manager per state directory, standard gRPC
health and reflection on its control socket."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from component_manager.testing.process import ManagerProcess, cm_executable, pid_alive

pytestmark = pytest.mark.integration


def cm(state_dir, *args, timeout=60):
    return subprocess.run([*cm_executable(), "--state-dir", str(state_dir), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_detach_runs_in_the_background_until_sigterm(manager_dir):
    started = cm(manager_dir, "manager", "run", "--detach")
    assert started.returncode == 0, started.stderr
    pid = int((manager_dir / "manager.pid").read_text())
    assert f"pid {pid}" in started.stdout
    try:
        assert cm(manager_dir, "start", "/counter").returncode == 0
        program = json.loads(cm(manager_dir, "show", "/counter", "--json").stdout)["pid"]
    finally:
        os.kill(pid, signal.SIGTERM)
        pidfd = os.pidfd_open(pid)  # not our child: wait through a pidfd
        assert select.select([pidfd], [], [], 60)[0], "the manager did not exit after SIGTERM"
        os.close(pidfd)
    assert not pid_alive(program)
    assert not (manager_dir / "manager.pid").exists()
    assert cm(manager_dir, "list").returncode == 3


def test_a_second_manager_on_the_same_state_is_refused(manager_dir):
    with ManagerProcess(manager_dir):
        second = cm(manager_dir, "manager", "run", timeout=60)
        assert second.returncode == 1
        assert "a manager is already running at" in second.stderr
        assert "Traceback" not in second.stderr
        assert cm(manager_dir, "list").returncode == 0


def test_health_and_reflection_are_served(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        channel = manager.channel()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        names = {s.name for reply in replies for s in reply.list_services_response.service}
        assert {"component_manager.v1.LifecycleController", "component_manager.v1.RealmQuery",
                "grpc.health.v1.Health"} <= names
