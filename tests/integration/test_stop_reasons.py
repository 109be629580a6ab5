"""Every stop reason the project promises, provoked with real processes: each row starts a
real manager, makes one instance stop for that reason, and checks the stop record that
`cm show` gives and the `stopped` event.

"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from component_manager.model.reasons import StopReason
from component_manager.testing.process import ManagerProcess

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
GOVERNED = str(HERE / "components" / "governed_realm.cml")


def _requested(manager, _tmp):
    manager.cm("start", "/a")
    manager.cm("stop", "/a")
    return "/a"


def _idle(manager, _tmp):
    manager.cm("start", "/echo_client")  # starts /echo_server through the route; idle 3s later
    return "/echo_server"


def _parent_stopping(manager, _tmp):
    manager.cm("start", "/parent/kid")
    manager.cm("stop", "/parent")
    return "/parent/kid"


def _package_updated(manager, tmp):
    manager.cm("start", "/counter")
    with open(tmp / "components" / "counter" / "main.py", "a") as f:
        f.write("\n# a new version\n")
    manager.cm("reload")
    return "/counter"


def _resource_limit(manager, _tmp):
    manager.cm("start", "/hog")
    return "/hog"


def _evicted(manager, _tmp):
    manager.cm("start", "/a")
    manager.cm("start", "/urgent")
    return "/a"


def _destroying(manager, _tmp):
    manager.cm("run", "/low:x", "sleeper.cml")
    manager.cm("destroy", "/low:x")
    return "/low:x"


def _system_shutdown(manager, _tmp):
    manager.cm("start", "/a")
    manager.terminate()
    manager.start()  # the record and the event were stored before it exited
    return "/a"


def _exited(manager, _tmp):
    manager.cm("start", "/exits_1")
    return "/exits_1"


def _crashed(manager, _tmp):
    manager.cm("start", "/crashes", check=False)
    return "/crashes"


def _start_failed(manager, _tmp):
    manager.cm("start", "/slow_start", check=False)
    return "/slow_start"


def _health_check_failed(manager, _tmp):
    manager.cm("start", "/unhealthy")  # reports NOT_SERVING after 1.5 s; two failed probes
    return "/unhealthy"


def _run_time_exceeded(manager, _tmp):
    manager.cm("start", "/time_limited")
    return "/time_limited"


def _copy_of_example_realm(tmp: Path) -> str:
    shutil.copytree(ROOT / "components", tmp / "components", ignore=shutil.ignore_patterns("__pycache__"))
    return str(tmp / "components" / "realm.cml")



# reason -> (how to provoke it: returns the moniker that stops, manager options, root)
PROVOKE = {
    "requested": (_requested, (), GOVERNED),
    "idle": (_idle, (), GOVERNED),
    "parent_stopping": (_parent_stopping, (), GOVERNED),
    "package_updated": (_package_updated, (), _copy_of_example_realm),
    "resource_limit": (_resource_limit, (), GOVERNED),
    "evicted": (_evicted, ("--max-running", "1"), GOVERNED),
    "destroying": (_destroying, (), GOVERNED),
    "system_shutdown": (_system_shutdown, (), GOVERNED),
    "exited": (_exited, (), GOVERNED),
    "crashed": (_crashed, (), GOVERNED),
    "start_failed": (_start_failed, (), GOVERNED),
    "health_check_failed": (_health_check_failed, (), _copy_of_example_realm),
    "run_time_exceeded": (_run_time_exceeded, (), GOVERNED),
}
ALL_REASONS = ("requested idle parent_stopping package_updated resource_limit evicted destroying "
               "system_shutdown exited crashed health_check_failed start_failed run_time_exceeded").split()
REASONS = ALL_REASONS
ELSEWHERE = {"node_lost": "tests/integration/test_ray.py: needs a Ray cluster"}  # provoked there


def test_the_table_names_every_stop_reason():
    assert set(ALL_REASONS) | set(ELSEWHERE) >= {r.value for r in StopReason} and len(ALL_REASONS) == 13


@pytest.mark.parametrize("reason", REASONS)
def test_stop_reason_is_recorded_shown_and_delivered(manager_dir, reason):
    provoke, options, root = PROVOKE[reason]
    tmp = manager_dir.parent
    root = root(tmp) if callable(root) else root
    with ManagerProcess(manager_dir, root=root, args=options, package_roots=[ROOT / "components"]) as manager:
        moniker = provoke(manager, tmp)
        with manager.events(moniker, history=True) as events:
            event = events.wait_for(type="stopped", moniker=moniker, reason=reason, timeout=30)
        assert event["stop"]["reason"] == reason
        if reason != "destroying":  # a destroyed instance is gone: its record with it
            shown = manager.show(moniker)
            assert shown["last_stop"]["reason"] == reason
            assert shown["last_stop_reason"] == reason
