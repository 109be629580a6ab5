"""The CLI's services, made from manager_pb2's descriptors, match the generated stubs."""

import grpc
import pytest

from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.cli.client import _Service

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("service", sorted(manager_pb2.DESCRIPTOR.services_by_name))
def test_each_method_is_the_kind_of_call_the_generated_stub_makes(service):
    channel = grpc.insecure_channel("unix:/nonexistent/manager.sock")  # never connected
    ours = _Service(channel, service)
    stub = getattr(manager_pb2_grpc, f"{service}Stub")(channel)
    for name in manager_pb2.DESCRIPTOR.services_by_name[service].methods_by_name:
        assert type(getattr(ours, name)) is type(getattr(stub, name)), name
        assert getattr(ours, name) is getattr(ours, name)  # made once
    with pytest.raises(AttributeError):
        ours.NoSuchMethod
    channel.close()
