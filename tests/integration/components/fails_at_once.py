"""Fails before it serves, with a traceback: what `cm run` and the harness must show."""

print("connecting to the database", flush=True)
raise RuntimeError("no database configured")
