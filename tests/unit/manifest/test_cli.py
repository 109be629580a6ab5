"""`cm compile` / `cm validate` / `cm format` as real subprocesses: exit codes, one-line
errors, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ECHO = ROOT / "components" / "echo" / "echo_server.cml"


def cm(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "component_manager.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=30, cwd=cwd or ROOT)


def test_compile_then_validate_the_cm(tmp_path):
    out = tmp_path / "echo.cm"
    r = cm("compile", ECHO, "-o", out)
    assert r.returncode == 0 and out.stat().st_size > 0, r.stderr
    r = cm("validate", out, ECHO, "--json")
    assert r.returncode == 0, r.stderr
    assert [f["ok"] for f in json.loads(r.stdout)] == [True, True]


def test_validate_reports_every_problem_one_per_line(tmp_path):
    bad = tmp_path / "bad.cml"
    bad.write_text('{\n  facets: {},\n  use: [ { protocol: "p", from: "#x" } ],\n}')
    r = cm("validate", bad)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:2: facets: 'facets' is not supported by this component manager",
        f"{bad}:3: use[0].from: '#x' is not a child",
    ]
    assert "Traceback" not in r.stderr


def test_validate_json_lists_problems_with_positions(tmp_path):
    bad = tmp_path / "bad.cml"
    bad.write_text("{\n  use: [ 1 2 ],\n}")
    r = cm("validate", "--json", bad)
    assert r.returncode == 1
    (entry,) = json.loads(r.stdout)
    assert entry["ok"] is False
    assert entry["problems"] == [{"file": str(bad), "line": 2, "column": 12, "key_path": "",
                                  "message": "expected ',' or ']'"}]


def test_tampered_cm_and_missing_file_are_one_line_errors(tmp_path):
    out = tmp_path / "echo.cm"
    assert cm("compile", ECHO, "-o", out).returncode == 0
    data = bytearray(out.read_bytes())
    data[-3] ^= 0xFF
    out.write_bytes(bytes(data))
    r = cm("validate", out, tmp_path / "nope.cml")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == f"{out}: fingerprint mismatch: the file was modified or is corrupt"
    assert lines[1].startswith(f"{tmp_path / 'nope.cml'}: cannot read")


def test_compile_failure_writes_nothing(tmp_path):
    bad = tmp_path / "bad.cml"
    bad.write_text('{ program: { runner: "elf" } }')
    r = cm("compile", bad, "-o", tmp_path / "bad.cm")
    assert r.returncode == 1 and not (tmp_path / "bad.cm").exists()
    assert r.stderr.strip() == f"{bad}:1: program.runner: unknown runner 'elf' (this manager has python, process, inproc, local, ray)"


def test_format_in_place_is_canonical(tmp_path):
    f = tmp_path / "x.cml"
    f.write_text('// gone\n{use:[{protocol:"a"}],program:{runner:"python",module:"m"}}')
    assert cm("format", f, "--in-place").returncode == 0
    text = f.read_text()
    assert text.startswith("{\n    program: {\n") and "// gone" not in text
    r = cm("format", f)
    assert r.returncode == 0 and r.stdout == text


def test_corpus_validation_never_tracebacks():
    corpus = os.environ.get("CM_CML_CORPUS")  # real Fuchsia manifests, outside this repository
    files = sorted(Path(corpus).glob("*.cml")) if corpus else []
    if not files:
        pytest.skip("set CM_CML_CORPUS to a folder of Fuchsia .cml files")
    r = cm("validate", *files)
    assert "Traceback" not in r.stderr and r.returncode in (0, 1)
    for line in r.stderr.splitlines():
        assert line.split(":")[0].endswith(".cml") and line.split(":")[1].isdigit(), line
