"""runners/isolation.py and runners/landlock.py: the uid pool on a real LMDB store, the
reachability check, the state folder's modes, and Landlock in a child process."""

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import pytest

from component_manager.errors import CmError, StartError
from component_manager.runners import isolation, landlock
from component_manager.storage.records import InstanceRecord
from component_manager.storage.topology import TopologyStore

A, B, C = "a" * 64, "b" * 64, "c" * 64
FREE = 900_000  # far above any uid this machine knows


@pytest.fixture
def store(tmp_path):
    s = TopologyStore(tmp_path / "manager.lmdb")
    yield s
    s.close()


def keep(store, *iids):
    for n, iid in enumerate(iids):
        store.put_instance(InstanceRecord(f"/x{n}", iid, "file:///p/x.cm"))


async def test_a_uid_per_instance_stable_across_restarts(tmp_path, store):
    pool = isolation.UidPool(store, FREE, FREE + 9)
    assert [await pool.uid_for(A), await pool.uid_for(B), await pool.uid_for(A)] == [FREE, FREE + 1, FREE]
    store.close()
    reopened = TopologyStore(tmp_path / "manager.lmdb")
    try:
        assert await isolation.UidPool(reopened, FREE, FREE + 9).uid_for(B) == FREE + 1
    finally:
        reopened.close()


async def test_uids_the_host_knows_are_never_handed_out(store):
    assert await isolation.UidPool(store, 0, FREE).uid_for(A) not in (0, os.getuid())


async def test_a_destroyed_instances_uid_is_taken_back_only_when_none_is_free(store):
    pool = isolation.UidPool(store, FREE, FREE + 1)
    keep(store, A)  # A still has its record; B's is gone (destroyed)
    assert [await pool.uid_for(A), await pool.uid_for(B)] == [FREE, FREE + 1]
    assert await pool.uid_for(C) == FREE + 1
    assert store.all_uids() == {A: FREE, C: FREE + 1}
    keep(store, A, C)
    with pytest.raises(StartError, match=f"no free uid in {FREE}-{FREE + 1}"):
        await pool.uid_for(B, "/b")


@pytest.mark.parametrize("text, expected", [("61184-65519", (61184, 65519)), ("5-5", (5, 5))])
def test_uid_range(text, expected):
    assert isolation._parse_range(text) == expected


@pytest.mark.parametrize("text", ["on", "10", "9-3", "0-10", "a-b"])
def test_bad_uid_range(text):
    with pytest.raises(CmError, match="expected auto, off or FIRST-LAST"):
        isolation._parse_range(text)


def test_unreachable_names_the_folder_that_blocks():
    base = Path(tempfile.mkdtemp())  # in /tmp, which everyone may pass (pytest's tmp_path: not)
    try:
        (base / "pkg").mkdir()
        assert isolation.unreachable([base / "pkg"]) == f"{base} searchable by other users (it is mode 0700)"
        base.chmod(0o711)
        assert isolation.unreachable([base / "pkg"]) == ""
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("shared, passable", [(False, 0o700), (True, 0o711)])
def test_state_folder_is_the_managers_alone(tmp_path, shared, passable):
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "x.log").write_text("")
    os.chmod(state / "logs", 0o755)
    (state / "manager.pid").write_text("1")
    (state / "zygote.log").write_text("")
    isolation.secure_state_dir(state, shared)
    mode = lambda p: (state / p).stat().st_mode & 0o777  # noqa: E731
    assert [mode("."), mode("run"), mode("storage")] == [passable] * 3
    assert [mode("logs"), mode("manager.lmdb")] == [0o700, 0o700]
    assert [mode("manager.pid"), mode("zygote.log")] == [0o600, 0o600]


def test_confinement_travels_as_json():
    c = isolation.Confinement(uid=5, gid=5, landlock=True, read=("/usr",), write=("/s",), scratch="/r")
    assert isolation.Confinement.from_dict(json.loads(json.dumps(c.to_dict()))) == c


CHILD = textwrap.dedent("""
    import os, sys
    from component_manager.runners import isolation
    allowed, listed = sys.argv[1], sys.argv[2]
    read, listable = isolation._runtime_paths()
    isolation.enter(isolation.Confinement(landlock=True, write=(allowed,), read=read,
                                          listable=(*listable, listed)))
    open(os.path.join(allowed, "mine"), "w").write("ok")
    print(open(os.path.join(allowed, "mine")).read(), sorted(os.listdir(listed)), isolation._libc.prctl(3, 0, 0, 0, 0))
    for path in (os.path.join(listed, "theirs"), os.path.join(listed, "deeper", "theirs")):
        try:
            open(path).read()
            print("GOT IN")
        except PermissionError:
            print("refused")
""")


@pytest.mark.skipif(not landlock.abi_version(), reason="this kernel has no Landlock")
def test_enter_confines_a_process_to_its_own_files(tmp_path):
    allowed, listed = tmp_path / "mine", tmp_path / "theirs"
    allowed.mkdir()
    (listed / "deeper").mkdir(parents=True)
    (listed / "theirs").write_text("secret")
    (listed / "deeper" / "theirs").write_text("secret")
    done = subprocess.run([sys.executable, "-c", CHILD, str(allowed), str(listed)],
                          capture_output=True, text=True, timeout=30)
    # its own files work; a listable folder lists but reads nothing; and it is not dumpable
    assert done.stdout.split("\n")[:3] == ["ok ['deeper', 'theirs'] 0", "refused", "refused"], done.stderr


@pytest.mark.skipif(not landlock.abi_version(), reason="this kernel has no Landlock")
def test_popen_confines_the_child_not_the_caller(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("x")
    confinement = isolation.Confinement(landlock=True, read=isolation._runtime_paths()[0])
    child = isolation.popen(confinement, ["cat", str(secret)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _out, err = child.communicate(timeout=30)
    assert child.returncode != 0 and "Permission denied" in err
    assert secret.read_text() == "x"  # this process (and thread) is as free as before


@pytest.mark.skipif(os.geteuid() != 0, reason="hands files to another uid: needs root")
def test_hand_over_never_follows_a_link_the_program_planted(tmp_path):
    """As root, in folders the program owns: a link in place of its storage area is refused,
    and what it points at keeps its owner."""
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "shadow").write_text("root's")
    area = tmp_path / "storage" / A / "data"
    area.parent.mkdir(parents=True)
    area.symlink_to(elsewhere)
    spec = types.SimpleNamespace(startup=types.SimpleNamespace(storage={"data": str(area)}),
                                 log_path=tmp_path / "x.log")
    (tmp_path / "run").mkdir()
    with pytest.raises(OSError) as refused:
        isolation._hand_over(spec, FREE, tmp_path / "run")
    assert refused.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert (elsewhere / "shadow").stat().st_uid == 0 and elsewhere.stat().st_uid == 0
