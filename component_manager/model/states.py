"""Instance states and the one function allowed to change them.

    unresolved ──resolve──> resolved ──start──> started
         │                    ▲   │  <──stop──────┘
         │                    └───┘ (package updated: back to unresolved)
         └──────────────┬─────────┴──shutdown──> shutdown ──destroy──> destroyed

Orthogonal to that, the program of a ``started`` instance runs or is paused (frozen):
``running ⇄ paused``, checked by ``set_execution`` against its own table (pausing a
stopped instance is an InvalidTransition). ``started`` means the program (if any) is running or paused; a stop moves it back to
``resolved``. ``shutdown`` is final for the program: it never starts again, and the only
way on is ``destroyed``. Callers comment each call with its edge (``# started -> resolved``).
"""

from __future__ import annotations

import enum

from ..errors import InvalidTransition

__all__ = ["ExecutionState", "State", "check_execution", "set_execution", "transition"]


class State(enum.StrEnum):
    UNRESOLVED = "unresolved"
    RESOLVED = "resolved"
    STARTED = "started"
    SHUTDOWN = "shutdown"
    DESTROYED = "destroyed"


class ExecutionState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"


_ALLOWED: dict[State, frozenset[State]] = {
    State.UNRESOLVED: frozenset({State.RESOLVED, State.SHUTDOWN}),
    State.RESOLVED: frozenset({State.STARTED, State.UNRESOLVED, State.SHUTDOWN}),
    State.STARTED: frozenset({State.RESOLVED, State.SHUTDOWN}),
    State.SHUTDOWN: frozenset({State.DESTROYED}),
    State.DESTROYED: frozenset(),
}


def transition(instance, target: State) -> None:
    """Move ``instance.state`` to ``target``, or raise InvalidTransition naming the moniker."""
    if target not in _ALLOWED[instance.state]:
        raise InvalidTransition(str(instance.moniker), instance.state.value, target.value)
    instance.state = target


_EXECUTION_ALLOWED: dict[ExecutionState, frozenset[ExecutionState]] = {
    ExecutionState.RUNNING: frozenset({ExecutionState.PAUSED}),
    ExecutionState.PAUSED: frozenset({ExecutionState.RUNNING}),
    ExecutionState.STOPPED: frozenset(),  # a start or a stop makes and ends runs, not this
}


def check_execution(instance, target: ExecutionState) -> None:
    """Raise InvalidTransition (naming the moniker) unless its run may move to ``target``."""
    current = instance.execution_state
    if target not in _EXECUTION_ALLOWED[current]:
        raise InvalidTransition(str(instance.moniker), current.value, target.value)


def set_execution(instance, target: ExecutionState) -> None:
    """Pause or resume ``instance``'s run, or raise InvalidTransition naming the moniker."""
    check_execution(instance, target)
    instance.run.paused = target is ExecutionState.PAUSED
