"""The manager's control API: LifecycleController, Realm, RealmQuery and EventStream.

Thin: each method parses the request, finds the instance, calls an action (``actions/``),
and turns instances and plans into messages. Errors go through ``status.reports_errors``.
"""

from __future__ import annotations

import json
import logging

from .. import actions
from .._generated import manager_pb2 as pb
from .._generated import manager_pb2_grpc as pb_grpc
from ..errors import CmError, InvalidArgument, RouteError
from ..model.config import config_values
from ..model.reasons import START_REQUESTED, StopReason, StopRecord
from ..moniker import parse
from ..policy import restart
from ..policy.budget import priority_of
from ..routing.report import plan_reports
from ..runners.limits import Limits, usage_of
from ..routing.route import route_use
from ..runners import get_runner, isolation
from ..runners.ray_actor import node_areas
from .status import bounded, code_for, reports_errors

log = logging.getLogger("component_manager.api")

__all__ = ["EventStreamServicer", "LifecycleServicer", "RealmQueryServicer", "RealmServicer", "details", "listing",
           "summary_fields"]


def summary(inst) -> pb.InstanceSummary:
    return pb.InstanceSummary(**summary_fields(inst))


def listing(model, prefix: str = "") -> list[dict]:
    """The InstanceSummary fields of ``prefix`` (default: the root) and everything below it,
    parents first: what ListInstances answers, over gRPC and on the query socket. One pass,
    on the event loop: a consistent snapshot."""
    start = model.find(prefix) if prefix else model.root
    return [summary_fields(inst) for inst in start.walk()]


def summary_fields(inst) -> dict:
    """An InstanceSummary's fields, defaults left out: ``repeated.add(**fields)`` builds a
    list of 100,000 in a third of the time separate messages take. An enum's ``_value_``,
    not its ``value`` (a property): 40 ns, not 220, three times per instance."""
    fields = {"moniker": inst.moniker_text, "url": inst.url, "instance_id": inst.instance_id,
              "state": inst.state._value_, "execution_state": inst.execution_state._value_,
              "incarnation": inst.incarnation, "status": inst.status._value_}
    if inst.restart is not None:  # only then can the detail differ from the status
        fields["status_detail"] = inst.status_detail
    if inst.run is not None:
        fields["pid"] = inst.run.pid
        if inst.run.node:
            fields["node"] = inst.run.node
    if inst.last_stop is not None:
        fields["last_stop_reason"] = inst.last_stop.reason._value_
        fields["last_stop_disposition"] = inst.last_stop.disposition._value_
    return fields


def stop_record(record) -> pb.StopRecord:
    return pb.StopRecord(
        reason=record.reason.value, disposition=record.disposition.value, exit_code=record.exit_code,
        signal=record.signal, run_time_s=record.run_time_s, stopped_at=record.stopped_at,
        detail=record.detail, failed=record.failed, hook_failures=record.hook_failures,
    )


def restart_info(inst) -> pb.RestartInfo:
    state = inst.restart
    info = pb.RestartInfo(policy=restart.effective(inst).policy)
    if state is not None:
        info.attempt, info.next_at, info.last = state.attempt, state.next_at, state.last
        info.gave_up, info.restarts = state.gave_up, len(state.history)
    return info


def details(model, inst) -> pb.InstanceDetails:
    reply = pb.InstanceDetails(summary=summary(inst), log_path=str(model.log_path(inst)))
    uid = isolation.uid_of(inst.instance_id)
    if uid is not None:
        reply.uid = uid
    if inst.run is not None:
        reply.start_reason = inst.run.start_reason
        reply.started_at = inst.run.started_at
    elif inst.last_start:
        reply.start_reason = inst.last_start.get("reason", "")
    if inst.last_stop is not None:
        reply.last_stop.CopyFrom(stop_record(inst.last_stop))
        reply.has_last_stop = True
    reply.children.extend(str(c.moniker) for c in inst.children.values())
    snapshot = model.snapshots.info(inst.instance_id)
    if snapshot is not None:
        reply.snapshot.CopyFrom(storage_snapshot(snapshot))
    decl = inst.decl
    if decl is None:
        return reply
    reply.fingerprint = decl.fingerprint
    if decl.program is not None:
        reply.restart.CopyFrom(restart_info(inst))
        reply.has_restart = True
    reply.package_dir = str(inst.package_dir or "")
    _limits_and_usage(reply, inst)
    reply.uses.extend(_use_info(model, inst, use) for use in decl.uses)
    reply.exposes.extend(f"{e.kind} {e.target_name}" for e in decl.exposes)
    reply.storage.extend(storage_infos(model, inst))
    reply.config.extend(_config_info(model, inst))
    for coll in decl.collections:
        members = [str(c.moniker) for c in inst.children.values() if c.collection == coll.name]
        reply.collections.append(pb.CollectionInfo(name=coll.name, durability=coll.durability,
                                                   children=members))
    return reply


def _config_info(model, inst) -> list[pb.ConfigValue]:
    """The running program's config; for one not running, what a start would give it now
    (none when that start would fail on its config: ``last_stop`` says why)."""
    if inst.run is not None:
        values = {key: (value, "") for key, value in inst.run.config.items()}
    else:
        try:
            values = config_values(actions.RoutingView(model), inst)
        except CmError:
            return []
    return [pb.ConfigValue(key=k, value_json=json.dumps(v), source=src) for k, (v, src) in sorted(values.items())]


def _limits_and_usage(reply: pb.InstanceDetails, inst) -> None:
    program = inst.decl.program
    if program is None:
        return
    reply.priority = priority_of(inst)
    limits = Limits.of(program)
    enforcement = getattr(inst.run.program, "limits", None) if inst.run is not None else None
    if limits:
        reply.limits.CopyFrom(pb.Limits(memory_bytes=limits.memory, cpu=limits.cpu, pids=limits.pids,
                                        open_files=limits.open_files, enforced_by=_enforced_by(enforcement)))
    if inst.run is not None and inst.run.program is not None and inst.run.program.identity is not None:
        try:
            used = enforcement.usage() if enforcement is not None else usage_of(inst.run.pid)
        except OSError:
            used = {"memory_bytes": 0, "cpu_s": 0.0}
        reply.usage.CopyFrom(pb.ResourceUsage(**used))


def _enforced_by(enforcement) -> str:
    """How its limits hold while it runs ("" when it does not run)."""
    if enforcement is None:
        return ""
    if enforcement.group is not None:
        return f"cgroup {enforcement.group.version}"
    return "watch" if enforcement.limits.memory else "rlimit"


def _use_info(model, inst, use) -> pb.UseInfo:
    info = pb.UseInfo(kind=use.kind, name=use.target_name)
    try:
        result = route_use(actions.RoutingView(model), inst.moniker, use)
        info.route_status = result.status
        info.source = str(result.source_moniker) if result.source_moniker is not None else "void"
    except RouteError as e:
        info.route_status = f"broken: {e.reason}"
    except Exception as e:  # noqa: BLE001 - a show must not fail because one route is odd
        info.route_status = f"broken: {e}"
    return info


def storage_infos(model, inst) -> list[pb.StorageInfo]:
    """One StorageInfo per storage the instance uses (the area may not exist yet: size 0).
    A program on Ray keeps its areas on its node: that path (its size where it is readable)."""
    uses = [u for u in (inst.decl.uses if inst.decl is not None else ()) if u.kind == "storage"]
    on_ray = _ray_areas(model, inst) if uses else None
    return [pb.StorageInfo(name=u.target_name, path=str(path), size_bytes=_size(path))
            for u in uses
            for path in (on_ray / u.target_name if on_ray else model.areas.path_for(inst.instance_id, u.target_name),)]


def _ray_areas(model, inst):
    """The folder of ``inst``'s areas on the Ray node it runs on (or would start on, or
    last ran on); None for a program of this host."""
    cluster = get_runner("ray").cluster
    if cluster is None:
        return None
    node = actions.node_of(model, inst)
    program = inst.decl.program if inst.decl is not None else None
    if not node and inst.run is None and program is not None and program.runner == "ray":
        info = model.snapshots.info(inst.instance_id)
        node = info.node if info is not None else ""
    return node_areas(cluster.areas_root, node, inst.instance_id) if node else None


def storage_snapshot(info) -> pb.StorageSnapshot:
    """A SnapshotInfo (``storage/snapshots.py``) as its message."""
    return pb.StorageSnapshot(taken_at=info.taken_at, size_bytes=info.size, sha256=info.sha256, node=info.node)


def _storage_names(inst) -> list[str]:
    uses = inst.decl.uses if inst.decl is not None else ()
    return [u.target_name for u in uses if u.kind == "storage"]


def _size(path) -> int:
    try:
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    except OSError:
        return 0


def stop_reply(inst, record) -> pb.StopReply:
    reply = pb.StopReply(instance=summary(inst), was_running=record is not None)
    if record is not None:
        reply.stop.CopyFrom(stop_record(record))
    return reply


async def many(model, monikers, act, outcome) -> pb.ManyReply:
    """StartMany / StopMany: ``act(instances)`` on the instances named (each once, however
    often or however spelled), then one outcome per moniker in the order asked:
    ``outcome(inst, result)``, or a Failure with the error a single call would answer."""
    if not monikers:
        raise InvalidArgument("no moniker given")
    insts: dict[str, object] = {}
    errors: dict[str, BaseException] = {}
    for text in monikers:
        if text not in insts and text not in errors:
            try:
                insts[text] = model.find(text)
            except CmError as error:
                errors[text] = error
    unique = list({id(inst): inst for inst in insts.values()}.values())
    results = dict(zip(map(id, unique), await act(unique)))
    reply = pb.ManyReply()
    for text in monikers:
        inst = insts.get(text)
        result = errors[text] if inst is None else results[id(inst)]
        if isinstance(result, BaseException):
            item = pb.InstanceOutcome(failure=failure(result))
        else:
            item = outcome(inst, result)
        item.moniker = text
        reply.outcomes.append(item)
    return reply


def failure(error: BaseException) -> pb.Failure:
    """What a single call would have answered for ``error``, as one outcome of many."""
    if not isinstance(error, CmError):
        log.error("internal error", exc_info=error)
        return pb.Failure(code="INTERNAL", message=bounded(f"internal error: {type(error).__name__}: {error}"),
                          error=type(error).__name__)
    return pb.Failure(code=code_for(error).name, message=bounded(str(error)), error=type(error).__name__)


class LifecycleServicer(pb_grpc.LifecycleControllerServicer):
    def __init__(self, model):
        self.model = model

    @reports_errors
    async def Resolve(self, request, context):
        inst = self.model.find(request.moniker)
        await actions.resolve_async(self.model, inst)
        return summary(inst)

    @reports_errors
    async def Start(self, request, context):
        inst = self.model.find(request.moniker)
        was_running = await actions.start(self.model, inst, START_REQUESTED)
        return pb.StartReply(instance=summary(inst), was_running=was_running)

    @reports_errors
    async def Stop(self, request, context):
        inst = self.model.find(request.moniker)
        record = await actions.stop(self.model, inst, StopReason.REQUESTED)
        await restart.cancel(self.model, inst)  # a requested stop leaves no restart scheduled
        return stop_reply(inst, record)

    @reports_errors
    async def StartMany(self, request, context):
        return await many(self.model, request.monikers,
                          lambda insts: actions.start_many(self.model, insts, START_REQUESTED),
                          lambda inst, was_running: pb.InstanceOutcome(
                              started=pb.StartReply(instance=summary(inst), was_running=was_running)))

    @reports_errors
    async def StopMany(self, request, context):
        return await many(self.model, request.monikers,
                          lambda insts: actions.stop_many(self.model, insts, StopReason.REQUESTED,
                                                          then=lambda inst: restart.cancel(self.model, inst)),
                          lambda inst, record: pb.InstanceOutcome(stopped=stop_reply(inst, record)))

    @reports_errors
    async def Reset(self, request, context):
        inst = self.model.find(request.moniker)
        was_reset = await restart.reset(self.model, inst)
        return pb.ResetReply(instance=summary(inst), was_reset=was_reset)

    @reports_errors
    async def Destroy(self, request, context):
        inst = self.model.find(request.moniker)
        await actions.destroy(self.model, inst)
        return pb.DestroyReply(moniker=str(inst.moniker), instance_id=inst.instance_id)

    @reports_errors
    async def Restart(self, request, context):
        inst = self.model.find(request.moniker)
        record = await actions.restart(self.model, inst)
        reply = pb.StopReply(instance=summary(inst), was_running=record is not None)
        if record is not None:
            reply.stop.CopyFrom(stop_record(record))
        return reply

    @reports_errors
    async def Pause(self, request, context):
        inst = self.model.find(request.moniker)
        await actions.pause(self.model, inst)
        return summary(inst)

    @reports_errors
    async def Resume(self, request, context):
        inst = self.model.find(request.moniker)
        await actions.resume(self.model, inst)
        return summary(inst)

    @reports_errors
    async def Reload(self, request, context):
        inst = self.model.find(request.moniker) if request.moniker else self.model.root
        report = await actions.reload(self.model, inst)
        return pb.ReloadReply(**vars(report))

    @reports_errors
    async def DeleteStorage(self, request, context):
        inst = self.model.find(request.moniker)
        deleted = storage_infos(self.model, inst)
        await actions.delete_storage(self.model, inst, [a.name for a in deleted])
        return pb.DeleteStorageReply(moniker=str(inst.moniker), instance_id=inst.instance_id, deleted=deleted)

    @reports_errors
    async def SnapshotStorage(self, request, context):
        return await self._storage_copy(request.moniker, actions.snapshot_storage)

    @reports_errors
    async def RestoreStorage(self, request, context):
        return await self._storage_copy(request.moniker, actions.restore_storage)

    async def _storage_copy(self, moniker: str, action) -> pb.SnapshotStorageReply:
        """Snapshot or restore (``action``) the storage of ``moniker``."""
        inst = self.model.find(moniker)
        await actions.resolve_async(self.model, inst)  # the storage it uses is in its manifest
        info, areas = await action(self.model, inst, _storage_names(inst))
        return pb.SnapshotStorageReply(moniker=inst.moniker_text, instance_id=inst.instance_id,
                                       snapshot=storage_snapshot(info), areas=areas)


class RealmServicer(pb_grpc.RealmServicer):
    def __init__(self, model):
        self.model = model

    @reports_errors
    async def CreateChild(self, request, context):
        child = await actions.create_child(self.model, request.parent, request.collection, request.name,
                                              request.url, start=request.start)
        return summary(child)

    @reports_errors
    async def DestroyChild(self, request, context):
        parent = self.model.find(request.parent)
        inst = self.model.find(parent.moniker.child(request.name, request.collection or None))
        await actions.destroy(self.model, inst)
        return pb.DestroyReply(moniker=str(inst.moniker), instance_id=inst.instance_id)

    @reports_errors
    async def ListChildren(self, request, context):
        inst = self.model.find(request.moniker)
        return pb.ListInstancesReply(instances=[summary(c) for c in inst.children.values()])


class RealmQueryServicer(pb_grpc.RealmQueryServicer):
    def __init__(self, model):
        self.model = model

    @reports_errors
    async def ListInstances(self, request, context):
        reply = pb.ListInstancesReply()
        add = reply.instances.add
        for fields in listing(self.model, request.prefix):
            add(**fields)
        return reply

    @reports_errors
    async def GetInstance(self, request, context):
        return details(self.model, self.model.find(request.moniker))

    @reports_errors
    async def Route(self, request, context):
        inst = self.model.find(request.moniker)
        await actions.resolve_async(self.model, inst)
        reports = await actions.walk_routes(
            self.model, lambda view: plan_reports(view, inst.moniker, inst.decl, request.capability))
        for report in reports:  # where each provider runs (or would start), for a Ray node
            source = self.model.index.get(report["source_moniker"]) if report["source_moniker"] else None
            report["source_node"] = actions.node_of(self.model, source) if source is not None else ""
        return pb.RouteReply(routes=[route_report(r) for r in reports])


class EventStreamServicer(pb_grpc.EventStreamServicer):
    def __init__(self, model):
        self.model = model

    @reports_errors
    async def Subscribe(self, request, context):
        bus = self.model.events
        if request.moniker_prefix:
            parse(request.moniker_prefix)  # a fragment would match nothing: say so (MonikerError)
        unknown = sorted(set(request.types) - bus.types)
        if unknown:
            raise InvalidArgument(f"unknown event type {', '.join(map(repr, unknown))} "
                                  f"(one of: {', '.join(sorted(bus.types))})")
        with bus.subscribe(request.moniker_prefix, request.types) as live:
            await context.send_initial_metadata(())  # tells the client it is subscribed
            last_seq = 0
            if request.history:
                for event in bus.history(request.moniker_prefix, request.types):
                    last_seq = event["seq"]
                    yield event_message(event)
            while request.follow:
                event = await live.queue.get()
                if event["seq"] > last_seq:  # subscribed before replaying: skip the overlap
                    yield event_message(event)


def route_report(report: dict) -> pb.RouteReport:
    return pb.RouteReport(**{**report, "hops": [pb.RouteHop(**h) for h in report["hops"]]})


def event_message(event: dict) -> pb.Event:
    message = pb.Event(seq=event["seq"], timestamp=event["timestamp"], type=event["type"],
                       moniker=event["moniker"], instance_id=event["instance_id"],
                       reason=event.get("reason", ""), detail=event.get("detail", ""))
    if event.get("stop"):
        message.stop.CopyFrom(stop_record(StopRecord.from_dict(event["stop"])))
    return message
