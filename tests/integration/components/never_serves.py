"""Never reports serving; prints its pid so that a test knows it has been launched."""
import os
import threading

print(f"launched pid={os.getpid()}", flush=True)
threading.Event().wait()
