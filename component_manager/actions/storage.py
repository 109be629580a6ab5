"""Delete storage: empty a stopped instance's storage areas (``cm storage delete``). The
instance keeps its identity; its next start finds fresh, empty areas."""

from __future__ import annotations

from ..errors import InvalidRequest
from ..model.action_set import ActionKind
from .context import ActionContext

__all__ = ["delete_storage"]


async def delete_storage(ctx: ActionContext, inst, names: list[str]) -> None:
    """Delete ``inst``'s storage areas; ``names`` (the areas it uses) go in the event.

    Raises InvalidRequest while it runs or starts."""
    # No await from the check to the delete: a start cannot slip in between.
    if inst.run is not None or inst.actions.in_flight(ActionKind.START):
        raise InvalidRequest(str(inst.moniker), "is running; stop it before deleting its storage")
    ctx.areas.delete(inst.instance_id)
    await ctx.events.record("storage_deleted", inst, detail=", ".join(names))
