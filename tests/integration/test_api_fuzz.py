"""Fuzz every method of the manager's API against a real manager process.

Each method gets requests built from its message descriptor (strings from a list of hostile
values and random text, any booleans and numbers) and raw bytes that may not parse. Every
answer must be OK or a proper code (never INTERNAL, UNKNOWN or a timeout), and afterwards the
manager still serves the same instances and has logged no traceback. Bounded: 100 examples
per method and kind, about 20 s in all.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, settings
from grpc_health.v1 import health_pb2
from hypothesis import strategies as st

from component_manager._generated import component_pb2, manager_pb2
from component_manager.testing.process import ManagerProcess

pytestmark = pytest.mark.integration

BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.UNAVAILABLE}
HOSTILE = ["", "/", "\0", "/a\0b", "x" * 5000, "/" * 3000, "/" + "a/" * 2000, "/no:such", ":x", "/x:",
           "..", "/../..", "/a//b", "\u00e9\u2028", "file:///dev/zero", "/dev/zero", "/dev/urandom",
           "/etc/shadow", "file:///etc/passwd", "file://[", "/proc/self/mem", "a" * 300 + ".cml",
           "counter/counter.cml", "echo/echo_server.cml", "#x", "self", "parent", "data"]
TEXT = st.one_of(st.sampled_from(HOSTILE),
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
SETTINGS = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def message_strategy(descriptor, depth: int = 0):
    """Any message of this type, fields drawn from the hostile values above."""
    fields = {}
    for field in descriptor.fields:
        value = field_strategy(field, depth)
        if value is not None:
            fields[field.name] = value
    return st.fixed_dictionaries({}, optional=fields)


def field_strategy(field, depth: int):
    kinds = {FieldDescriptor.TYPE_STRING: TEXT, FieldDescriptor.TYPE_BOOL: st.booleans(),
             FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
             FieldDescriptor.TYPE_INT32: st.integers(-2**31, 2**31 - 1),
             FieldDescriptor.TYPE_INT64: st.integers(-2**63, 2**63 - 1),
             FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
             FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
             FieldDescriptor.TYPE_DOUBLE: st.floats(), FieldDescriptor.TYPE_FLOAT: st.floats(width=32)}
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_strategy(field.message_type, depth + 1) if depth < 2 else None
    one = kinds.get(field.type)
    if one is None:
        return None
    return st.lists(one, max_size=4) if field.is_repeated else one


SERVED = ((manager_pb2, "manager.sock"), (health_pb2, "manager.sock"), (component_pb2, "component.sock"))
NOT_FUZZED = {"Lifecycle.OnStop",  # served by programs, not by the manager
              "Health.Watch"}  # a stream that never ends


def methods():
    for module, socket in SERVED:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if f"{service.name}.{method.name}" not in NOT_FUZZED:
                    yield pytest.param(module, socket, service, method, id=f"{service.name}.{method.name}")


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    previous = os.getcwd()
    os.chdir(root)  # the default realm, as `cm manager run` finds it
    process = ManagerProcess(tmp_path_factory.mktemp("fuzz") / "state").start()
    try:
        process.cm("create", "/workers:kept", "counter/counter.cml")
        process.cm("start", "/workers:kept")
        yield process
    finally:
        process.close()
        os.chdir(previous)


def instances(manager) -> list[tuple[str, str]]:
    return [(i["moniker"], i["instance_id"]) for i in manager.cm_json("list")]


def call(manager, socket: str, service, method, body: bytes):
    channel = grpc.insecure_channel(f"unix:{manager.state_dir / socket}")
    path = f"/{service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            list(channel.unary_stream(path)(body, timeout=10))
        else:
            channel.unary_unary(path)(body, timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    finally:
        channel.close()


def request_class(module, descriptor):
    return getattr(module, descriptor.name)


@pytest.mark.parametrize("module, socket, service, method", list(methods()))
def test_every_method_answers_every_request_properly(manager, module, socket, service, method):
    cls = request_class(module, method.input_type)
    before = instances(manager)

    @SETTINGS
    @given(fields=message_strategy(method.input_type))
    def well_formed(fields):
        request = cls(**fields)
        if hasattr(request, "follow"):
            request.follow = False  # a subscription that never ends is no answer to wait for
        code, details = call(manager, socket, service, method, request.SerializeToString())
        assert code not in BAD_CODES, (fields, code, details)
        assert "Traceback" not in details and len(details) <= 2000

    @SETTINGS
    @given(body=st.binary(max_size=64))
    def raw_bytes(body):
        try:
            assume(not getattr(cls.FromString(body), "follow", False))
        except DecodeError:
            pass
        code, details = call(manager, socket, service, method, body)
        assert code not in BAD_CODES, (body, code, details)

    well_formed()
    raw_bytes()
    assert instances(manager) == before, "the fuzz changed the tree"
    assert "Traceback" not in manager.log_text()


def test_reflection_refuses_undecodable_requests(manager):
    """Reflection is a bidirectional stream: a message that does not parse ends it with
    INVALID_ARGUMENT; a valid one is answered."""
    channel = grpc.insecure_channel(f"unix:{manager.state_dir / 'manager.sock'}")
    call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    with pytest.raises(grpc.RpcError) as caught:
        list(call(iter([b"\xff\xff\xff"]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    from grpc_reflection.v1alpha import reflection_pb2

    valid = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    assert list(call(iter([valid]), timeout=10))
    channel.close()
