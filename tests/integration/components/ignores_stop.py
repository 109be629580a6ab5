"""Ignores every polite request to stop: no OnStop handler, SIGTERM ignored."""
import signal
import threading

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring stop requests", flush=True)
threading.Event().wait()
