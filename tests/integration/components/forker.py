"""Forks sleeping children until the kernel refuses a fork, then exits 3."""
import os
import sys
import time

kids = 0
try:
    while kids < 200:
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
        kids += 1
except OSError as e:
    print(f"fork refused after {kids} children: {e}", flush=True)
    sys.exit(3)
print("never refused", flush=True)
