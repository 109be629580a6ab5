"""The restart policy's pure parts: which stops it covers, the back-off delays, the status
a person sees, the stored state."""

import random

import pytest

from component_manager.manifest.decl import RestartDecl
from component_manager.model.backoff import RestartState
from component_manager.model.reasons import Disposition, Status, StopReason, StopRecord, status_of
from component_manager.model.states import ExecutionState, State
from component_manager.policy.restart import covers, next_delay

R = StopReason
FAILURES = {R.CRASHED, R.HEALTH_CHECK_FAILED, R.RESOURCE_LIMIT, R.START_FAILED, R.RUN_TIME_EXCEEDED,
            R.NODE_LOST}


def record(reason: StopReason, exit_code: int | None = None) -> StopRecord:
    return StopRecord(reason, Disposition.STOPPED, exit_code)


@pytest.mark.parametrize("reason", list(StopReason))
@pytest.mark.parametrize("policy", ["never", "on_failure", "always"])
def test_which_stops_each_policy_restarts(policy, reason):
    if reason is R.EXITED:
        assert covers(policy, record(reason, 0)) == (policy == "always")
        assert covers(policy, record(reason, 3)) == (policy != "never")
    else:
        assert covers(policy, record(reason)) == (policy != "never" and reason in FAILURES)


def test_delays_double_up_to_the_cap_with_jitter():
    decl = RestartDecl(initial_delay_ms=100, max_delay_ms=1000)
    rand = random.Random(7)
    delays = [next_delay(decl, n, rand) for n in range(1, 9)]
    for n, delay in enumerate(delays, 1):
        nominal = min(1.0, 0.1 * 2 ** (n - 1))
        assert nominal * 0.9 <= delay <= min(1.0, nominal * 1.1)
    assert len(set(delays)) == len(delays)
    assert next_delay(RestartDecl(initial_delay_ms=0), 5) == 0
    assert next_delay(decl, 10_000) <= 1.0  # no overflow however many attempts


def test_status_and_its_detail():
    crashed = StopRecord(R.CRASHED, Disposition.KILLED, signal=11)
    assert crashed.describe() == "crashed SIGSEGV"
    assert record(R.EXITED, 3).describe() == "exited 3"
    backing = RestartState("i", attempt=3, next_at=1000.0, last="crashed SIGSEGV", history=[1, 2, 3])
    assert status_of(State.RESOLVED, ExecutionState.STOPPED, crashed, backing) is Status.BACKING_OFF
    assert backing.describe(now=998.4) == "backing off (attempt 3, next in 1.6s, last: crashed SIGSEGV)"
    assert status_of(State.STARTED, ExecutionState.RUNNING, crashed, backing) is Status.RUNNING
    gave_up = RestartState("i", attempt=5, last="exited 1", gave_up=True, history=[1, 2, 3, 4, 5])
    assert status_of(State.RESOLVED, ExecutionState.STOPPED, None, gave_up) is Status.FAILED
    assert gave_up.describe() == "failed (gave up after 5 restarts, last: exited 1)"
    assert status_of(State.RESOLVED, ExecutionState.STOPPED, None, RestartState("i")) is Status.STOPPED


def test_restart_state_round_trips_without_its_timer():
    state = RestartState("i" * 64, 2, 123.5, "crashed SIGABRT", False, [1.0, 2.0])
    again = RestartState.from_dict(state.to_dict())
    assert again.to_dict() == state.to_dict() and again.timer is None


def test_stop_record_keeps_hook_failures():
    rec = StopRecord(R.REQUESTED, Disposition.STOPPED, hook_failures=("post_stop hook ['x'] failed",))
    assert StopRecord.from_dict(rec.to_dict()) == rec
    old = {k: v for k, v in rec.to_dict().items() if k != "hook_failures"}  # stored by an older manager
    assert StopRecord.from_dict(old).hook_failures == ()


async def test_a_wait_for_the_scheduled_start_ends_with_it_or_says_backing_off():
    import asyncio

    from component_manager.errors import StartError

    state = RestartState("i", attempt=2, next_at=4e9, last="crashed SIGSEGV")
    state.started = asyncio.get_running_loop().create_future()
    with pytest.raises(StartError, match=r"it is backing off \(attempt 2, next in .*last: crashed SIGSEGV\)"):
        await state.wait_scheduled("/x", 0.01)
    asyncio.get_running_loop().call_soon(state.started.set_result, None)
    await state.wait_scheduled("/x", 5)  # the start happened: no error
    await RestartState("i").wait_scheduled("/x", 0)  # nothing scheduled: no wait at all


def test_the_parents_entry_overrides_the_childs_own_restart():
    from types import SimpleNamespace

    from component_manager.manifest import compile_text
    from component_manager.moniker import parse
    from component_manager.policy.restart import effective

    parent = SimpleNamespace(decl=compile_text(
        '{ children: [ { name: "a", url: "a.cml", restart: { policy: "always" } }, { name: "b", url: "b.cml" } ],'
        '  collections: [ { name: "w", restart: { policy: "on_failure", max_restarts: 1 } } ] }', "p.cml"))
    own = compile_text('{ program: { runner: "process", binary: "/x", restart: { policy: "never" } } }', "c.cml")

    def child(moniker: str, collection=None):
        return SimpleNamespace(parent=parent, decl=own, moniker=parse(moniker), collection=collection,
                               is_dynamic=collection is not None)

    assert effective(child("/a")).policy == "always"
    assert effective(child("/b")).policy == "never"  # no override: its own
    assert effective(child("/w:x", "w")) == RestartDecl(policy="on_failure", max_restarts=1)
