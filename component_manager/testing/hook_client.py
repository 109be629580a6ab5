"""The command a local component's callable hook runs as (see ``RealmBuilder.add_local_child``):
it asks the test's launcher socket to run the hook, prints what it said, and exits 0 if the
hook returned, 1 if it raised. Run as a file, not a module: it imports nothing of the
package, so a hook costs an interpreter start and one round trip.

    python hook_client.py LAUNCHER_SOCKET HOOK_KEY
"""

import json
import os
import socket
import sys


def main(path: str, key: str) -> int:
    env = {k: v for k, v in os.environ.items() if k.startswith("CM_")}
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(json.dumps({"hook": key, "env": env}).encode() + b"\n")
        reply = json.loads(sock.makefile("rb").readline() or b'{"ok": false, "output": "no reply"}')
    if reply.get("output"):
        print(reply["output"])
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
