"""Storage snapshots: what moving an instance's storage costs, without the wire.

``snapshot_per_mb``: an LMDB area of S MB (random 1 KB values, so that compaction keeps
them all) is packed (``pack_areas``: compacted copy, checksums) and restored over an
existing area (``unpack_areas``: checks, fsync, atomic swap), both on this machine; the
figure is (pack + unpack) per MB of blob, in ms, at each size. A move between Ray nodes adds
the object store's transfer to it. Baseline in the same run: copying the area's data.mdb
with ``shutil.copyfile`` + fsync (what a bare file copy costs per MB).

    .venv/bin/python benchmarks/bench_snapshots.py            # 1, 10 and 50 MB
    .venv/bin/python benchmarks/run.py --only snapshots
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, log, summary, workdir  # noqa: E402

from component_manager.storage.areas import open_environment  # noqa: E402
from component_manager.storage.snapshots import pack_areas, unpack_areas  # noqa: E402


def make_area(path: Path, mb: int) -> None:
    """``mb`` MB of random 2,000-byte values (the blob is about twice that: each takes a page)."""
    env = open_environment(path)
    with env.begin(write=True) as txn:
        for i in range(mb * 500):
            txn.put(f"key-{i:09d}".encode(), os.urandom(2000))
    env.close()


def per_mb(mb: int, reps: int) -> tuple[list[float], list[float], list[float], int]:
    """(pack + unpack, pack, bare-copy baseline) seconds per MB of blob for an area of about
    ``mb`` MB, and the blob's size."""
    with workdir("cm-snap") as tmp:
        source, dest = tmp / "node1" / "data", tmp / "node2" / "data"
        source.mkdir(parents=True)
        make_area(source, mb)
        both, packs, copies, size = [], [], [], 0
        for _ in range(reps):
            t0 = time.perf_counter()
            blob = pack_areas({"data": source})
            t1 = time.perf_counter()
            unpack_areas(blob, {"data": dest})
            t2 = time.perf_counter()
            size = len(blob)
            copy = tmp / "copy.mdb"
            t3 = time.perf_counter()
            shutil.copyfile(source / "data.mdb", copy)
            fd = os.open(copy, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            t4 = time.perf_counter()
            copy.unlink()
            blob_mb = size / 1e6
            both.append((t2 - t0) / blob_mb)
            packs.append((t1 - t0) / blob_mb)
            copies.append((t4 - t3) / blob_mb)
        return both, packs, copies, size


def run(cfg) -> list[dict]:
    sizes, reps = ([1, 10], 3) if cfg.quick else ([1, 10, 50], 5)
    figures = []
    for mb in sizes:
        both, packs, copies, size = per_mb(mb, reps)
        log(f"snapshot {mb} MB: pack+unpack {summary(both, 1e3)['median']:.1f} ms/MB")
        figures.append(figure(
            f"snapshot_{mb}mb", f"storage snapshot of a {mb} MB area: pack + unpack, per MB", "ms/MB",
            summary(both, 1e3),
            [{"name": "pack alone", **summary(packs, 1e3)},
             {"name": "cp data.mdb + fsync", **summary(copies, 1e3)}],
            target="moves 50 MB in < 2 s with Ray's transfer", note=f"blob {size:,} bytes"))
    return figures


if __name__ == "__main__":
    import types
    for f in run(types.SimpleNamespace(quick="--quick" in sys.argv)):
        o = f["ours"]
        print(f"{f['key']:14} {o['median']:7.1f} ms/MB (p99 {o['p99']:.1f}, n {o['n']})  "
              + "  ".join(f"{b['name']}: {b['median']:.1f}" for b in f["baselines"]) + f"  ({f['note']})")
