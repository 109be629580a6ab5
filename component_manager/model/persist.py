"""Instance <-> stored record, in one place, and recovery of programs a dead manager left.

Recovery: the store lists every program that was running (pid, process group, start time,
boot id). Any of those still alive belongs to a manager that died; it is stopped (its
whole process group killed) and its stop is recorded, so nothing is left orphaned and the
instance can start afresh.
"""

from __future__ import annotations

import logging
import time

from ..runners import procinfo
from ..runners.base import ProcessIdentity
from ..storage.topology import InstanceRecord, ProcessRecord
from .reasons import Disposition, StopReason, StopRecord

log = logging.getLogger("component_manager.model")

__all__ = ["load", "load_all", "recover_processes", "save", "save_process", "forget_process"]


def save(writer, inst) -> None:
    """Write ``inst``'s record through ``writer``: the store, or a batch of one commit."""
    writer.put_instance(InstanceRecord(
        moniker=str(inst.moniker), instance_id=inst.instance_id, url=inst.url,
        incarnation=inst.incarnation, collection=inst.collection or "",
        dynamic=inst.collection is not None, last_start=inst.last_start,
        last_stop=inst.last_stop.to_dict() if inst.last_stop else None,
    ))


def load(store, moniker: str):
    return store.get_instance(moniker)


def load_all(store) -> dict:
    return {record.moniker: record for record in store.all_instances()}


def save_process(writer, inst, identity: ProcessIdentity, started_at: float) -> None:
    writer.put_process(ProcessRecord(
        instance_id=inst.instance_id, moniker=str(inst.moniker), pid=identity.pid,
        pgid=identity.pgid, start_ticks=identity.start_ticks, boot_id=identity.boot_id,
        started_at=started_at,
    ))


def forget_process(writer, inst) -> None:
    writer.delete_process(inst.instance_id)


def recover_processes(model) -> None:
    for record in list(model.store.all_processes()):
        identity = ProcessIdentity(record.pid, record.pgid, record.start_ticks, record.boot_id)
        killed = procinfo.kill_group(identity)
        inst = model.index.get(record.moniker)
        if inst is not None and inst.instance_id == record.instance_id and killed:
            run_time = max(0.0, time.time() - record.started_at)
            stop = StopRecord(StopReason.SYSTEM_SHUTDOWN.value, Disposition.KILLED.value,
                              None, 9, run_time, time.time(),
                              "left running by a manager that died; stopped at recovery")
            model.record_stop_now(inst, stop)
        if killed:
            log.warning("recovered %s: killed %d process(es) left by a dead manager", record.moniker, killed)
        model.store.delete_process(record.instance_id)
