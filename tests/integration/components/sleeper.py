"""Prints its open-files limit, then does nothing until it is stopped (SIGTERM ends it)."""
import resource
import time

print(f"nofile={resource.getrlimit(resource.RLIMIT_NOFILE)[0]}", flush=True)
while True:
    time.sleep(3600)
