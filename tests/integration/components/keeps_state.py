"""Adds one to b"count" in its storage, prints count=N, then waits for SIGTERM (it never
calls the manager: it would outlive a dead one)."""
import asyncio
import signal

from component_manager.runners.startup import StartupInfo
from component_manager.storage.areas import open_environment


def main() -> None:
    info = StartupInfo.from_inherited_fd()
    env = open_environment(info.storage["data"])
    with env.begin(write=True) as txn:
        count = int(txn.get(b"count", b"0")) + 1
        txn.put(b"count", str(count).encode())
    print(f"count={count}", flush=True)
    signal.sigwait({signal.SIGTERM})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    main()
