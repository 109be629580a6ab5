"""Destroy: shut down, destroy the children (in parallel), delete the storage, remove the
instance from its parent and from the persistent topology, emit ``destroyed``.

A later instance of the same name is a new identity: a new instance id, the next
incarnation, empty storage.
"""

from __future__ import annotations

import asyncio

from ..model.reasons import StopReason
from ..model.states import State, transition
from .set import ActionKind
from .stop import stop_or_shutdown

__all__ = ["destroy"]


async def destroy(model, inst) -> None:
    """Destroy ``inst`` and its subtree; joins a destroy in flight, aborts a start."""
    await inst.actions.register(ActionKind.DESTROY, lambda: _destroy(model, inst))


async def _destroy(model, inst) -> None:
    if inst.state is State.DESTROYED:
        return
    await stop_or_shutdown(model, inst, StopReason.DESTROYING, final=True)
    children = list(inst.children.values())
    results = await asyncio.gather(*(destroy(model, c) for c in children), return_exceptions=True)
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if failed is not None:
        raise failed
    model.areas.delete(inst.instance_id)
    model.log_path(inst).unlink(missing_ok=True)
    transition(inst, State.DESTROYED)  # shutdown -> destroyed
    await model.remove(inst)
