"""`cm ui` as a person runs it, for tests, benchmarks and tools: the real `cm` executable,
the URL read from the first line it prints, Ctrl-C (SIGINT) to stop it.

    with ManagerProcess(state_dir) as manager, UiProcess(manager.state_dir) as ui:
        urllib.request.urlopen(ui.url)           # the page; ui.base + "/api/..." with ui.token
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path

from .process import cm_executable

__all__ = ["UiProcess"]


class UiProcess:
    def __init__(self, state_dir: Path, *args: str):
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: nobody reads it while it serves
        self.process = subprocess.Popen([*cm_executable(), "--state-dir", str(state_dir), "ui", *args],
                                        stdout=subprocess.PIPE, stderr=self.errors, text=True,
                                        start_new_session=True)
        line = self.process.stdout.readline()  # printed once the socket listens
        if not line.startswith("cm ui: "):
            self.process.wait(timeout=30)
            why = self.stderr_text()
            self.close()
            raise RuntimeError(f"cm ui did not start: {line}{why}")
        self.url = line.split(" ", 2)[2].strip()
        self.base, self.token = self.url.split("/?token=")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.errors.close()

    def stderr_text(self) -> str:
        """What `cm ui` wrote to stderr so far."""
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace")

    def __enter__(self) -> UiProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
