"""Per-instance storage areas on a real filesystem and real LMDB."""

import stat

import pytest

from component_manager.errors import StorageError
from component_manager.storage.areas import StorageAreas, open_environment

A = "a1" * 32
B = "b2" * 32


@pytest.fixture
def areas(tmp_path):
    return StorageAreas(tmp_path / "state" / "storage")


def test_path_for_is_root_instance_name(areas):
    assert areas.path_for(A, "data") == areas.root / A / "data"


def test_create_makes_a_private_lmdb_environment(areas):
    path = areas.create(A, "data")
    assert (path / "data.mdb").is_file() and (path / "lock.mdb").is_file()
    for p in (areas.root, path.parent, path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700
    assert areas.create(A, "data") == path  # idempotent


def test_program_data_survives_and_size_grows(areas):
    path = areas.create(A, "data")
    empty = areas.size(A)
    env = open_environment(path)
    with env.begin(write=True) as txn:
        for i in range(2000):
            txn.put(f"k{i}".encode(), b"x" * 500)
    env.close()
    assert areas.size(A) > empty
    areas.create(A, "data")  # creating again keeps the data
    env = open_environment(path, readonly=True)
    with env.begin() as txn:
        assert txn.get(b"k7") == b"x" * 500
    env.close()


def test_environment_settings(areas):
    env = open_environment(areas.create(A, "data"))
    try:
        assert env.info()["map_size"] == 1 << 30
        env.open_db(b"one")  # named sub-databases are allowed
    finally:
        env.close()


def test_list_and_delete(areas):
    assert areas.list() == []
    areas.create(B, "x")
    areas.create(A, "data")
    areas.create(A, "cache")
    assert areas.list() == [A, B]
    areas.delete(A)
    areas.delete(A)  # idempotent
    assert areas.list() == [B]
    assert areas.size(A) == 0


@pytest.mark.parametrize("iid,name", [(A, ".."), (A, "a/b"), ("../x", "data"), ("", "data"), (A, "")])
def test_names_that_could_escape_the_root_are_refused(areas, iid, name):
    with pytest.raises(StorageError):
        areas.path_for(iid, name)


def test_open_missing_environment_readonly_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="cannot open"):
        open_environment(tmp_path / "missing", readonly=True)
