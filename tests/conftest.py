import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def manager_dir(monkeypatch):
    """A short state directory (Unix socket paths hold 108 bytes), removed afterwards; the
    working directory is the project root, as a newcomer's would be."""
    path = Path(tempfile.mkdtemp(prefix="cm-"))
    monkeypatch.chdir(ROOT)
    yield path / "state"
    shutil.rmtree(path, ignore_errors=True)
