"""The supervisord baseline's program for the crash -> restarted figure: the SDK provider's
imports, then it runs until killed (supervisord counts it RUNNING once spawned)."""

import time

from component_manager import sdk  # noqa: F401  (the same imports as the SDK provider)

if __name__ == "__main__":
    while True:
        time.sleep(3600)
