"""docs/components.md, "From an empty folder", followed as written: every file it shows is
written into an empty folder and every command it shows is run there, in order (the real
`cm protoc`, `cm validate`, a nested pytest run of the harness tests, a real manager)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from component_manager.cli.manager_ctl import manager_pid
from component_manager.testing.process import kill_leftover_programs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DOC = Path(__file__).resolve().parents[2] / "docs" / "components.md"
STEP = re.compile(r"<!-- (file: (?P<path>\S+)|run) -->\n```[\w-]*\n(?P<body>.*?)```", re.S)


def recipe() -> list[tuple[str | None, str]]:
    """(path, content) for a file, (None, script) for commands, in the document's order."""
    return [(m.group("path"), m.group("body")) for m in STEP.finditer(DOC.read_text())]


def test_the_recipe_has_files_and_commands():
    steps = recipe()
    paths = {path for path, _ in steps if path}
    assert {"hello/hello.proto", "hello/server.py", "hello/hello.cml", "tests/test_hello.py"} <= paths
    assert any(path is None and "cm protoc" in body for path, body in steps)


def test_a_component_from_an_empty_folder_as_the_doc_says():
    folder = Path(tempfile.mkdtemp(prefix="cm-doc-"))  # short: Unix socket paths hold 108 bytes
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CM_STATE_DIR", None)
    outputs = []
    try:
        for path, body in recipe():
            if path is not None:
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                (folder / path).write_text(body)
                continue
            result = subprocess.run(["bash", "-e", "-c", body], cwd=folder, env=env, capture_output=True,
                                    text=True, timeout=150)
            outputs.append(result.stdout)
            assert result.returncode == 0, f"{body}\n{result.stdout}\n{result.stderr}"
        assert (folder / "hello" / "hello_pb2_grpc.py").read_text().count("from . import hello_pb2") == 1
        text = "".join(outputs)
        assert "2 passed" in text
        assert "State           started (running)" in text and 'greeting = "Hello"' in text
    finally:
        pid = manager_pid(str(folder / ".cm"))
        if pid:
            os.kill(pid, 9)
        kill_leftover_programs(folder / ".cm")
        shutil.rmtree(folder, ignore_errors=True)
