"""Hostile URLs against a real manager: a FIFO, a device, a directory, a file outside the
package roots or not a manifest are each refused at once (INVALID_ARGUMENT, one line that
quotes no file), while other requests keep being answered and the tree stays intact."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from component_manager._generated import manager_pb2 as pb
from component_manager._generated import manager_pb2_grpc as pb_grpc
from component_manager.testing.process import ManagerProcess

pytestmark = pytest.mark.integration

REALM = '{ collections: [ { name: "workers", durability: "persistent" } ] }'
SECRET = "root:$6$hash:19000:0:99999:7:::"


@pytest.fixture
def realm(tmp_path):
    """A root realm in its own folder (its package root), a FIFO in it, a secret outside."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "realm.cml").write_text(REALM)
    (pkg / "ok.cml").write_text("{}")
    (pkg / "dir.cml").mkdir()
    os.mkfifo(pkg / "fifo.cml")
    (pkg / "big.cml").write_text("{" + " " * (2 << 20) + "}")
    (tmp_path / "secret").write_text(SECRET)
    (tmp_path / "outside.cml").write_text("{}")
    (pkg / "link.cml").symlink_to(tmp_path / "outside.cml")
    manager = ManagerProcess(tmp_path / "state", root=str(pkg / "realm.cml")).start()
    try:
        yield manager, pkg
    finally:
        try:  # before the fix the manager is stuck opening the FIFO: let it go
            os.close(os.open(pkg / "fifo.cml", os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        manager.close()


def hostile_urls(pkg):
    return {"fifo": f"{pkg}/fifo.cml", "zero": "/dev/zero", "urandom": "/dev/urandom",
            "directory": f"{pkg}/dir.cml", "symlink out": f"{pkg}/link.cml",
            "outside": f"{pkg.parent}/outside.cml", "not a manifest": f"{pkg.parent}/secret",
            "shadow": "/etc/shadow", "too big": f"{pkg}/big.cml", "nul": f"{pkg}/a\0.cml"}


def test_hostile_urls_are_refused_at_once_and_the_manager_keeps_serving(realm):
    manager, pkg = realm
    channel = grpc.insecure_channel(f"unix:{manager.state_dir / 'manager.sock'}")
    realm_stub, query = pb_grpc.RealmStub(channel), pb_grpc.RealmQueryStub(channel)
    realm_stub.CreateChild(pb.CreateChildRequest(parent="/", collection="workers", name="good",
                                                 url=f"{pkg}/ok.cml"), timeout=30)
    for name, url in hostile_urls(pkg).items():
        with pytest.raises(grpc.RpcError) as caught:
            realm_stub.CreateChild(pb.CreateChildRequest(parent="/", collection="workers", name="x",
                                                         url=url), timeout=10)
        error = caught.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error.code(), error.details())
        assert "\n" not in error.details() and "$6$hash" not in error.details(), (name, error.details())
        listed = query.ListInstances(pb.ListInstancesRequest(), timeout=10)
        assert [i.moniker for i in listed.instances] == ["/", "/workers:good"], name
    channel.close()


def test_a_fifo_url_does_not_hold_up_other_requests(realm):
    """Ten creates naming a FIFO and ListInstances at once: every answer within 10 s."""
    manager, pkg = realm
    channel = grpc.insecure_channel(f"unix:{manager.state_dir / 'manager.sock'}")
    realm_stub, query = pb_grpc.RealmStub(channel), pb_grpc.RealmQueryStub(channel)

    def create(i):
        try:
            realm_stub.CreateChild(pb.CreateChildRequest(parent="/", collection="workers", name=f"f{i}",
                                                         url=f"{pkg}/fifo.cml"), timeout=10)
        except grpc.RpcError as e:
            return e.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(create, range(10)))
        assert query.ListInstances(pb.ListInstancesRequest(), timeout=10).instances
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 10
    channel.close()
