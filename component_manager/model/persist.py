"""Instance <-> stored record, in one place: the instance record and, while its program
runs, the process record that lets a later manager find the program (``actions/boot.py``)."""

from __future__ import annotations

from ..runners.base import ProcessIdentity
from ..storage.topology import InstanceRecord, ProcessRecord

__all__ = ["load", "load_all", "save", "save_process", "forget_process"]


def save(writer, inst) -> None:
    """Write ``inst``'s record through ``writer``: the store, or a batch of one commit."""
    writer.put_instance(InstanceRecord(
        moniker=inst.moniker_text, instance_id=inst.instance_id, url=inst.url,
        incarnation=inst.incarnation, collection=inst.collection or "",
        dynamic=inst.collection is not None, last_start=inst.last_start,
        last_stop=inst.last_stop.to_dict() if inst.last_stop else None,
    ))


def load(store, moniker: str):
    return store.get_instance(moniker)


def load_all(store) -> dict:
    return {record.moniker: record for record in store.all_instances()}


def save_process(writer, inst, identity: ProcessIdentity, started_at: float, run_info: dict | None = None) -> None:
    writer.put_process(ProcessRecord(
        instance_id=inst.instance_id, moniker=inst.moniker_text, pid=identity.pid,
        pgid=identity.pgid, start_ticks=identity.start_ticks, boot_id=identity.boot_id,
        started_at=started_at, run=run_info,
    ))


def forget_process(writer, inst) -> None:
    writer.delete_process(inst.instance_id)
