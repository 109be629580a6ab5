"""The model seen by the pure route walk (routing.route.TopologyView): manifests are
resolved on demand, so a route may pass through instances nobody has started yet."""

from __future__ import annotations

from ..errors import InstanceNotFound
from ..moniker import Moniker

__all__ = ["ModelView"]


class ModelView:
    def __init__(self, model) -> None:
        self._model = model

    def decl(self, moniker: Moniker):
        inst = self._model.find(moniker)
        self._model.resolve(inst)
        return inst.decl

    def parent(self, moniker: Moniker) -> Moniker | None:
        return moniker.parent

    def child_moniker(self, moniker: Moniker, child_name: str) -> Moniker | None:
        inst = self._model.find(moniker)
        self._model.resolve(inst)
        child = inst.children.get(child_name)
        return child.moniker if child is not None else None

    def collection_children(self, moniker: Moniker, collection: str) -> list[Moniker]:
        try:
            inst = self._model.find(moniker)
        except InstanceNotFound:
            return []
        return [c.moniker for c in inst.children.values() if c.collection == collection]
