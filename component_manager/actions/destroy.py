"""Destroy: shut down, then remove (``remove.py``): the children are destroyed in parallel,
the storage deleted, the instance removed from its parent and from the persistent topology,
``destroyed`` emitted. Only dynamic children can be destroyed.

A later instance of the same name is a new identity: a new instance id, the next
incarnation, empty storage.
"""

from __future__ import annotations

from ..errors import InvalidRequest
from ..model.action_set import ActionKind
from ..model.reasons import StopReason
from .context import ActionContext
from .remove import remove_now
from .shutdown import shutdown

__all__ = ["destroy"]


async def destroy(ctx: ActionContext, inst) -> None:
    """Destroy ``inst`` and its subtree; joins a destroy in flight.

    Raises InvalidRequest for the root or a static child."""
    if not inst.is_dynamic:
        what = "the root" if inst.parent is None else "a static child"
        raise InvalidRequest(str(inst.moniker), f"is {what}; only dynamic children can be destroyed")
    await inst.actions.register(ActionKind.DESTROY, lambda: _destroy(ctx, inst))


async def _destroy(ctx: ActionContext, inst) -> None:
    await shutdown(ctx, inst, StopReason.DESTROYING)  # destroy's prerequisite, as an action
    await remove_now(ctx, inst)
