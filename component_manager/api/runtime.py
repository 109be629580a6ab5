"""ComponentRuntime: what the manager serves to running programs, on component.sock.

Every call carries ``cm-token``, the secret of one run of one instance; the manager looks
the caller up by it, so a program can only act as itself, and a token from an earlier run
is refused.
"""

from __future__ import annotations

import json

from .. import actions
from .._generated import component_pb2 as pb
from .._generated import component_pb2_grpc as pb_grpc
from ..errors import AccessDenied
from .status import reports_errors

__all__ = ["RuntimeServicer"]

TOKEN_METADATA = "cm-token"


class RuntimeServicer(pb_grpc.ComponentRuntimeServicer):
    def __init__(self, model):
        self.model = model

    def _caller(self, context):
        token = dict(context.invocation_metadata()).get(TOKEN_METADATA, "")
        found = self.model.tokens.get(token)
        if found is None:
            raise AccessDenied("unknown or expired cm-token (not a running component of this manager)")
        return found

    @reports_errors
    async def ReportServing(self, request, context):
        _inst, run = self._caller(context)
        actions.mark_serving(run)
        return pb.ReportServingReply()

    @reports_errors
    async def Connect(self, request, context):
        inst, _run = self._caller(context)
        remaining = context.time_remaining()  # answer "backing off" before the caller gives up
        timeout = None if remaining is None else max(0.0, remaining - 0.1)
        opened = await actions.open_capability(self.model, inst, request.capability, timeout)
        return pb.ConnectReply(kind=opened.kind, address=opened.address, grant=opened.grant,
                               path=opened.path, value_json=opened.value_json,
                               provider=opened.provider)

    @reports_errors
    async def RequestStop(self, request, context):
        inst, run = self._caller(context)
        why_not = actions.request_stop(self.model, inst, run, idle=request.reason == "idle")
        return pb.RequestStopReply(accepted=not why_not, why_not=why_not)

    @reports_errors
    async def GetConfig(self, request, context):
        _inst, run = self._caller(context)
        return pb.ConfigReply(values_json=json.dumps(run.config))
