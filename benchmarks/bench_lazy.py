"""Cold lazy start, warm connect, call overhead and state writes: measured by a probe
component (``programs/probe.py``) from inside the client, each against a plain baseline the
probe measures from the same process in the same run.

The realm (generated): ``/echo`` provides ``bench.Echo`` (``programs/sdk_echo.py``), offered
to ``/probe_cold`` and ``/probe_warm``; ``/probe_state`` uses storage ``data``.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from _common import Api, figure, log, manager, read_bench_lines, summary, workdir, write_manifest


def realm(folder: Path, n_warm: int, n_state: int) -> str:
    probe = lambda *args: {"runner": "python", "module": "benchmarks.programs.probe",  # noqa: E731
                           "args": [str(a) for a in args]}
    write_manifest(folder / "echo.cml", {
        "program": {"runner": "python", "module": "benchmarks.programs.sdk_echo"},
        "capabilities": [{"protocol": "bench.Echo"}],
        "expose": [{"protocol": "bench.Echo", "from": "self"}],
    })
    for name, program in (("probe_cold", probe("cold", folder)), ("probe_warm", probe("warm", folder, n_warm))):
        write_manifest(folder / f"{name}.cml", {"program": program, "use": [{"protocol": "bench.Echo"}]})
    write_manifest(folder / "probe_state.cml", {
        "program": probe("state", folder, n_state),
        "use": [{"storage": "data", "path": "/data"}],
    })
    return write_manifest(folder / "realm.cml", {
        "capabilities": [{"storage": "data"}],
        "children": [{"name": n, "url": f"{n}.cml"} for n in ("echo", "probe_cold", "probe_warm", "probe_state")],
        "offer": [
            {"protocol": "bench.Echo", "from": "#echo", "to": ["#probe_cold", "#probe_warm"]},
            {"storage": "data", "from": "self", "to": ["#probe_state"]},
        ],
    })


def run_probe(m, api: Api, moniker: str, timeout: float = 300) -> dict:
    """Start the probe, wait for it to exit, return its newest BENCH line.

    Waits by polling every 10 ms: its log file until the BENCH line is there (GetInstance
    only every 0.5 s meanwhile, in case it failed), then GetInstance until it has stopped.
    Not GetInstance every 10 ms all along: while a probe measures, the manager should serve
    nothing but what is measured (a GetInstance of a running program reads every process's
    /proc/PID/stat for its usage: 1-2 ms of the manager's event loop on a busy machine, which
    a cold start may wait behind). Not the event stream: see docs/performance.md."""
    before = api.get(moniker)
    last = before.last_stop.stopped_at if before.has_last_stop else 0.0
    log_path = Path(before.log_path)
    offset = log_path.stat().st_size if log_path.exists() else 0
    api.start(moniker)
    deadline = time.monotonic() + timeout
    for poll in itertools.count():
        if (_has_bench_line(log_path, offset) or poll % 50 == 49) and _stopped_since(api.get(moniker), last):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{moniker} did not exit within {timeout}s")
        time.sleep(0.01)
    info = api.get(moniker)
    if info.last_stop.reason != "exited" or info.last_stop.exit_code != 0:
        raise RuntimeError(f"{moniker} failed: {info.last_stop}; log: {info.log_path}")
    lines = read_bench_lines(info.log_path)
    if not lines:
        raise RuntimeError(f"{moniker} printed no BENCH line; see {api.get(moniker).log_path}")
    return lines[-1]


def _has_bench_line(path: Path, offset: int) -> bool:
    """A whole BENCH line after ``offset`` (what the probe prints last, then it exits)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            tail = f.read()
    except FileNotFoundError:
        return False
    at = tail.find(b"BENCH ")
    return at >= 0 and tail.find(b"\n", at) >= 0


def _stopped_since(info, last: float) -> bool:
    return info.summary.execution_state == "stopped" and info.has_last_stop and info.last_stop.stopped_at > last


def run(cfg) -> list[dict]:
    n_cold = 3 if cfg.quick else 15
    n_warm = 30 if cfg.quick else 300
    n_state = 200 if cfg.quick else 2000
    with workdir("cm-lz") as tmp:
        root = realm(tmp / "m", n_warm, n_state)
        with manager(root, tmp / "s") as m:
            api = Api(m)
            cold = []
            for i in range(n_cold + 1):  # the first run warms the page cache: dropped
                if api.get("/echo").summary.execution_state != "stopped":
                    api.stop("/echo")
                sample = run_probe(m, api, "/probe_cold")
                if i:
                    cold.append(sample)
                log(f"cold {i}: ours {sample['ours_s'] * 1e3:.1f} ms, hand {sample['hand_s'] * 1e3:.1f} ms")
            api.start("/echo")
            warm = run_probe(m, api, "/probe_warm")
            st = run_probe(m, api, "/probe_state")
            api.close()

    ours_cold = summary([c["ours_s"] for c in cold], 1e3)
    hand = summary([c["hand_s"] for c in cold], 1e3)
    parts = {k.removesuffix("_s") + "_ms": summary([c[k] for c in cold], 1e3)["median"]
             for k in ("ours_connect_s", "ours_first_call_s", "hand_ready_s", "hand_first_call_s")}
    sdk_w, raw_w = summary(st["sdk_s"], 1e6), summary(st["raw_s"], 1e6)
    return [
        figure("cold_lazy_start", "cold lazy start: connect -> first answer", "ms", ours_cold,
               [{"name": "hand-spawned plain server -> first answer", **hand}],
               target="<= 1.2x", note="probe component times ctx.connect + first call; provider stopped before each run",
               parts_ms=parts),
        figure("warm_connect", "warm connect: ctx.connect(refresh=True) on a running provider", "ms",
               summary(warm["connect_s"], 1e3),
               [{"name": "bare gRPC unary round trip (Unix socket)", **summary(warm["plain_round_trip_s"], 1e3)},
                {"name": "plain new channel + first call", **summary(warm["plain_new_channel_s"], 1e3)}],
               target="<= 1.5x bare round trip",
               note="one Connect round trip to the manager; the provider's channel is already open",
               parts_ms={"first_call_after_ms": summary(warm["first_call_s"], 1e3)["median"],
                         "manager_get_config_ms": summary(warm["manager_round_trip_s"], 1e3)["median"]}),
        figure("call_overhead", "unary call, grant-checked (SDK) vs plain grpc.aio", "us",
               summary(warm["call_sdk_s"], 1e6),
               [{"name": "plain grpc.aio server, plain channel", **summary(warm["call_plain_s"], 1e6)}],
               target="< 1.10x"),
        figure("state_write", "durable single-put LMDB write txn", "us", sdk_w,
               [{"name": "raw lmdb in the same process", **raw_w}], target="(none given)",
               note=f"writes/s: sdk {1e6 / sdk_w['median']:.0f}, raw {1e6 / raw_w['median']:.0f}"),
    ]
