"""The ray runner's decisions that need no cluster: refusals with one line, the placement
option, the loopback rule. The runner against a real cluster: tests/integration/test_ray.py."""

import argparse
from pathlib import Path

import pytest

from component_manager.cli.manager_cmds import _placement
from component_manager.errors import RayUnavailable, StartError
from component_manager.manifest import compile_text
from component_manager.runners import get_runner
from component_manager.runners.base import LaunchSpec
from component_manager.runners.ray_actor import node_areas
from component_manager.runners.ray_runner import RayCluster, _loopback
from component_manager.runners.startup import StartupInfo

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("spec", ["local:0", "local:x", "local:99"])
async def test_a_bad_local_spec_is_one_line(tmp_path, spec):
    with pytest.raises(RayUnavailable, match=rf"^--ray {spec}: expected local:N with N from 1 to 16"):
        await RayCluster.connect(spec, tmp_path)


async def test_without_ray_installed_the_manager_says_so(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RayUnavailable, match=r"^--ray local:2: Ray is not installed"):
        await RayCluster.connect("local:2", tmp_path)


async def test_a_ray_program_without_a_cluster_fails_to_start(tmp_path):
    program = compile_text('{ program: { runner: "ray", module: "m" } }').program
    spec = LaunchSpec("/x", "0" * 64, program, tmp_path, tmp_path / "x.log",
                      StartupInfo(moniker="/x", instance_id="0" * 64, component_address="", token="t"))
    with pytest.raises(StartError, match="needs a manager run with --ray"):
        await get_runner("ray").launch(spec)


def test_placement_option():
    assert _placement("echo_server=node1") == ("/echo_server", "node1")
    assert _placement("/workers:c1=node2") == ("/workers:c1", "node2")
    for bad in ("echo_server", "=node1", "echo_server=", "Bad Name=node1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _placement(bad)


def test_loopback_addresses_and_node_folders():
    assert _loopback("127.0.0.1:6379") and _loopback("localhost:1") and _loopback("[::1]:6379")
    assert not _loopback("10.0.0.5:6379")
    assert node_areas("/s/ray/nodes/{node}/storage", "node2", "ab") == Path("/s/ray/nodes/node2/storage/ab")
