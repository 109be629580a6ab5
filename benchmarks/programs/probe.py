"""The measuring client: a component that times, from inside the client process, what a
component author sees, and times the plain baseline from the same process, in the same run.
It prints one ``BENCH {json}`` line to its log (``cm logs``) and exits 0.

Modes (``program.args``):

``cold WORKDIR``
    The provider is stopped (the harness made sure). Time ``ctx.connect("bench.Echo")``
    (the manager routes, spawns the provider, waits until it reports serving, answers with
    the address) plus the first call's answer. Then the baseline: spawn the same echo by hand
    (``sys.executable -m benchmarks.programs.plain_echo``, same imports), wait for its
    ready byte, open a channel, first answer. The probe's own channel to the manager is
    opened before the clock starts (``ctx.config()``): that is the client starting, not
    the lazy start.
``warm WORKDIR N``
    The provider is running and the probe already talks to it. N times:
    ``ctx.connect("bench.Echo", refresh=True)`` — the SDK asks the manager (one Connect round
    trip: route, grant, event) and hands back a view of the channel it already has to that
    provider address — timed alone, then the first call on it, timed apart. For scale, N
    GetConfig round trips to the manager (its cheapest call) are timed first. Baselines
    against a hand-spawned plain server: one unary round trip on an open channel; a new
    channel + first call. Then call overhead: calls on the open SDK channel (grant sent as
    call metadata, checked by the provider's SDK in the handler) and on the open plain
    channel, in alternating blocks.
``state WORKDIR N``
    N single-put durable write transactions in ``ctx.storage("data")``, then the same in a
    raw ``lmdb.open`` environment in WORKDIR (same map size), in the same process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

import grpc

from component_manager import sdk

METHOD = "/bench.Echo/Echo"
clock = time.perf_counter


async def spawn_plain(workdir: str):
    """Spawn the plain echo; return (process, socket path) once it wrote its ready byte."""
    sock = tempfile.mktemp(prefix="p", suffix=".sock", dir=workdir)
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.programs.plain_echo", sock, str(write_end)],
                            pass_fds=(write_end,), stdin=subprocess.DEVNULL)
    os.close(write_end)
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(read_end, lambda: ready.done() or ready.set_result(os.read(read_end, 1)))
    try:
        got = await asyncio.wait_for(ready, 30)
    finally:
        loop.remove_reader(read_end)
        os.close(read_end)
    if got != b"r":
        raise RuntimeError("plain echo did not start")
    return proc, sock


def end(proc) -> None:
    proc.terminate()
    proc.wait()


async def cold(ctx, workdir: str) -> dict:
    await ctx.config()  # the probe's own manager channel: opened before the clock starts
    t0 = clock()
    channel = await ctx.connect("bench.Echo")
    t1 = clock()
    assert await channel.unary_unary(METHOD)(b"x") == b"x"
    t2 = clock()
    # the baseline, by hand, from the same process
    b0 = clock()
    proc, sock = await spawn_plain(workdir)
    b1 = clock()
    async with grpc.aio.insecure_channel(f"unix:{sock}") as plain:
        assert await plain.unary_unary(METHOD)(b"x") == b"x"
    b2 = clock()
    end(proc)
    return {"mode": "cold", "ours_s": t2 - t0, "ours_connect_s": t1 - t0, "ours_first_call_s": t2 - t1,
            "hand_s": b2 - b0, "hand_ready_s": b1 - b0, "hand_first_call_s": b2 - b1}


async def warm(ctx, workdir: str, n: int) -> dict:
    await ctx.config()
    await (await ctx.connect("bench.Echo")).unary_unary(METHOD)(b"x")  # provider running, paths warm
    connect, first_call, manager_rt = [], [], []
    for _ in range(n):
        t0 = clock()
        await ctx._runtime.get_config()  # a round trip to the manager doing next to nothing
        manager_rt.append(clock() - t0)
    for _ in range(n):
        t0 = clock()
        channel = await ctx.connect("bench.Echo", refresh=True)  # asks the manager; channel reused
        t1 = clock()
        await channel.unary_unary(METHOD)(b"x")
        connect.append(t1 - t0)
        first_call.append(clock() - t1)

    proc, sock = await spawn_plain(workdir)
    try:
        plain = grpc.aio.insecure_channel(f"unix:{sock}")
        plain_call = plain.unary_unary(METHOD)
        for _ in range(50):
            await plain_call(b"x")
        fresh = []
        for _ in range(n):
            t0 = clock()
            async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
                await ch.unary_unary(METHOD)(b"x")
            fresh.append(clock() - t0)

        sdk_call = (await ctx.connect("bench.Echo")).unary_unary(METHOD)
        for _ in range(50):
            await sdk_call(b"x")
        calls_sdk, calls_plain = [], []
        blocks = max(1, n // 10)
        for _ in range(20):  # alternating blocks: both see the same machine noise
            for call, out in ((sdk_call, calls_sdk), (plain_call, calls_plain)):
                for _ in range(blocks):
                    t0 = clock()
                    await call(b"x")
                    out.append(clock() - t0)
        round_trip = calls_plain[:n]  # one bare unary round trip on an open channel
        await plain.close()
    finally:
        end(proc)
    return {"mode": "warm", "connect_s": connect, "first_call_s": first_call, "manager_round_trip_s": manager_rt, "plain_round_trip_s": round_trip,
            "plain_new_channel_s": fresh, "call_sdk_s": calls_sdk, "call_plain_s": calls_plain}


async def state(ctx, workdir: str, n: int) -> dict:
    import lmdb

    from component_manager.storage.areas import AREA_MAP_SIZE, AREA_MAX_DBS

    def writes(env) -> list[float]:
        out = []
        value = b"v" * 64
        for i in range(n):
            t0 = clock()
            with env.begin(write=True) as txn:
                txn.put(b"key-%d" % i, value)
            out.append(clock() - t0)
        return out

    t0 = clock()
    env = ctx.storage("data")
    open_sdk = clock() - t0
    sdk_writes = writes(env)
    path = os.path.join(workdir, "raw-lmdb")
    t0 = clock()
    raw = lmdb.open(path, map_size=AREA_MAP_SIZE, subdir=True, max_dbs=AREA_MAX_DBS)
    open_raw = clock() - t0
    raw_writes = writes(raw)
    raw.close()
    return {"mode": "state", "sdk_s": sdk_writes, "raw_s": raw_writes, "open_sdk_s": open_sdk, "open_raw_s": open_raw}


async def main(ctx: sdk.ComponentContext) -> None:
    mode, _package, *rest = sys.argv[1:]
    workdir = tempfile.gettempdir()  # TMPDIR: the folder the manager gives it; its package is read-only
    n = int(rest[0]) if rest else 0
    result = await {"cold": lambda: cold(ctx, workdir), "warm": lambda: warm(ctx, workdir, n),
                    "state": lambda: state(ctx, workdir, n)}[mode]()
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sdk.run(main)
