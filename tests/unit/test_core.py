"""Pure pieces every other part leans on: monikers, the transition table, grants, the
error tree's public surface, and generated stubs that match protos/."""

import subprocess
import sys
from pathlib import Path

import pytest

from component_manager import errors, grants
from component_manager.errors import AccessDenied, InvalidTransition, MonikerError
from component_manager.model.states import State, transition
from component_manager.moniker import ROOT, ChildName, parse

ROOT_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text", ["/", "/core", "/core/workers:job-7", "/a/b.c/d_e-f"])
def test_moniker_round_trips(text):
    assert str(parse(text)) == text


def test_moniker_structure():
    m = parse("/core/workers:job-7")
    assert m.leaf == ChildName("job-7", "workers")
    assert m.parent == parse("/core")
    assert ROOT.is_ancestor_of(m) and not m.is_ancestor_of(ROOT)


@pytest.mark.parametrize("text, why", [
    ("core", "starts with '/'"),
    ("/Core", "child name must match"),
    ("/a//b", "child name must match"),
    ("/w:", "child name must match"),
    (":x", "starts with '/'"),
    ("/" + "a" * 101, "child name must match"),
    ("/BAD:x", "collection name must match"),
])
def test_bad_monikers_say_what_is_wrong(text, why):
    with pytest.raises(MonikerError, match=why) as error:
        parse(text)
    assert repr(text) in str(error.value)


class _Thing:
    moniker = "/x"

    def __init__(self, state):
        self.state = state


@pytest.mark.parametrize("start, target", [
    (State.UNRESOLVED, State.RESOLVED), (State.RESOLVED, State.STARTED),
    (State.STARTED, State.RESOLVED), (State.STARTED, State.SHUTDOWN),
    (State.SHUTDOWN, State.DESTROYED),
])
def test_allowed_transitions(start, target):
    thing = _Thing(start)
    transition(thing, target)
    assert thing.state is target


@pytest.mark.parametrize("start, target", [
    (State.UNRESOLVED, State.STARTED), (State.SHUTDOWN, State.STARTED),
    (State.DESTROYED, State.RESOLVED), (State.RESOLVED, State.DESTROYED),
])
def test_forbidden_transitions_raise_a_typed_error(start, target):
    thing = _Thing(start)
    with pytest.raises(InvalidTransition, match="cannot go from"):
        transition(thing, target)
    assert thing.state is start


def test_grants_bind_client_capability_and_run():
    key = grants.new_key()
    grant = grants.issue(key, "/app/client", "echo.Echo")
    assert grants.verify(key, grant, "echo.Echo") == "/app/client"
    with pytest.raises(AccessDenied, match="not 'other.Thing'"):
        grants.verify(key, grant, "other.Thing")
    with pytest.raises(AccessDenied, match="earlier run"):
        grants.verify(grants.new_key(), grant, "echo.Echo")
    forged = grant[:-1] + bytes([grant[-1] ^ 1])
    with pytest.raises(AccessDenied):
        grants.verify(key, forged, "echo.Echo")
    with pytest.raises(AccessDenied, match="malformed"):
        grants.verify(key, b"short", "echo.Echo")


def test_error_tree_exports_every_error():
    public = {name for name, value in vars(errors).items()
              if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == errors.__name__}
    assert public == set(errors.__all__) - {"Problem"}


def _error_tree() -> set[type]:
    """Every subclass of CmError reachable from errors.__all__, recursively (subclasses
    defined elsewhere and already imported included)."""
    found, todo = set(), [getattr(errors, name) for name in errors.__all__]
    while todo:
        cls = todo.pop()
        if isinstance(cls, type) and issubclass(cls, errors.CmError) and cls not in found:
            found.add(cls)
            todo += cls.__subclasses__()
    return found


def test_every_error_in_the_tree_has_a_status_code():
    """api/status.py answers an error without a code in CODES as INTERNAL, as if it were a
    bug: every class of the tree needs its own entry (a subclass does not count as covered
    by its parent's), so that adding an error without deciding its code fails here. The
    CLI's own errors are exempt: they are made on the client and never answered."""
    from component_manager.api.status import CODES
    from component_manager.cli import client, monikers  # their subclasses join the walk

    client_side = {
        client.RemoteError: "a status the manager answered: it carries that status's code",
        monikers.AmbiguousMoniker: "the CLI found several instances for a fragment",
    }
    tree = _error_tree()
    assert errors.DependencyCycle in tree and set(client_side) <= tree
    missing = sorted(cls.__name__ for cls in tree - {errors.CmError} - set(client_side) if cls not in CODES)
    assert missing == []


def test_generated_stubs_match_the_protos():
    result = subprocess.run([sys.executable, str(ROOT_DIR / "tools" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
