"""Helpers for the break-in programs: make a call, and say what a user would have seen."""
import ctypes
import errno
import json
import os
import signal

import grpc

from component_manager._generated import component_pb2 as pb
from component_manager._generated import component_pb2_grpc as pb_grpc

GRANT_KEY = "cm-grant-bin"


async def call(address: str, method: str, grant: bytes | None = None, payload: bytes = b"hi") -> str:
    """Call a raw-bytes unary method; "OK" or "CODE: details"."""
    metadata = ((GRANT_KEY, grant),) if grant is not None else None
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await channel.unary_unary(method)(payload, metadata=metadata, timeout=20)
            return "OK"
        except grpc.aio.AioRpcError as e:
            return f"{e.code().name}: {e.details()}"


async def runtime_connect(address: str, token: str, capability: str):
    """A raw ComponentRuntime.Connect with any token: (reply, "OK") or (None, "CODE: details")."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ComponentRuntimeStub(channel)
        try:
            reply = await stub.Connect(pb.ConnectRequest(capability=capability),
                                       metadata=(("cm-token", token),), timeout=30)
            return reply, "OK"
        except grpc.aio.AioRpcError as e:
            return None, f"{e.code().name}: {e.details()}"


def report(attack: str, observed: str, refused_if: str = "PERMISSION_DENIED") -> bool:
    """Print one line for the test to read; True if the attempt was refused as expected."""
    refused = observed.startswith(refused_if)
    print("ATTEMPT " + json.dumps({"attack": attack, "refused": refused, "observed": observed}), flush=True)
    return refused


def report_os(attack: str, attempt) -> bool:
    """Run ``attempt()`` (a file or process operation on what is not ours); refused means
    the kernel said EACCES or EPERM."""
    try:
        attempt()
        observed = "OK"
    except OSError as e:
        refused = e.errno in (errno.EACCES, errno.EPERM)
        observed = f"{'REFUSED' if refused else 'ERROR'}: {type(e).__name__}: {e}"
    return report(attack, observed, "REFUSED")


def os_attacks(targets: dict) -> list[bool]:
    """Finding 6 of issue 13, every way: other instances' storage, logs, the manager's store,
    other programs' memory (grant keys, tokens) and signals."""
    victim, provider = targets["victim_pid"], targets["provider_pid"]
    area = targets["victim_storage"]
    return [
        report_os("read_victim_storage", lambda: open(f"{area}/data.mdb", "rb").read(16)),
        report_os("write_victim_storage", lambda: open(f"{area}/data.mdb", "r+b").close()),
        report_os("plant_in_victim_storage", lambda: open(f"{area}/planted", "w").close()),
        report_os("list_storage_root", lambda: os.listdir(targets["storage_root"])),
        report_os("read_victim_log", lambda: open(targets["victim_log"], "rb").read(16)),
        report_os("list_logs", lambda: os.listdir(targets["logs_dir"])),
        report_os("read_manager_lmdb", lambda: open(targets["manager_lmdb"], "rb").read(16)),
        report_os("victim_mem", lambda: open(f"/proc/{victim}/mem", "rb").close()),
        report_os("victim_environ", lambda: open(f"/proc/{victim}/environ", "rb").read()),
        report_os("victim_fds", lambda: [os.readlink(f"/proc/{victim}/fd/{n}")
                                         for n in os.listdir(f"/proc/{victim}/fd")]),
        report_os("provider_mem", lambda: open(f"/proc/{provider}/mem", "rb").close()),
        report_os("provider_ptrace", lambda: _ptrace_attach(provider)),
        report_os("manager_mem", lambda: open(f"/proc/{targets['manager_pid']}/mem", "rb").close()),
        report_os("signal_victim", lambda: os.kill(victim, signal.SIGCONT)),
    ]


def _ptrace_attach(pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH: it got in; let go
