"""Pure parts of what `cm` says: "did you mean", times for --since, log offsets, the run
marker, package-relative imports in generated stubs, and "did you mean" for manifest keys."""

import time

import pytest

from component_manager.cli.main import did_you_mean
from component_manager.cli.output import log_tail, parse_since
from component_manager.cli.query_cmds import lines_offset, since_offset
from component_manager.errors import ManifestError
from component_manager.manifest import compile_text
from component_manager.protoc import relative_imports


def test_did_you_mean_names_the_closest_choice():
    message = "argument COMMAND: invalid choice: 'lsit' (choose from 'list', 'logs', 'tree')"
    assert did_you_mean(message) == "unknown command 'lsit' (did you mean 'list'?); one of: list, logs, tree"
    assert did_you_mean("argument SUBCOMMAND: invalid choice: 'zz' (choose from 'run', 'stop')") == (
        "unknown subcommand 'zz'; one of: run, stop")
    assert did_you_mean("the following arguments are required: moniker") == (
        "the following arguments are required: moniker")


def test_parse_since_reads_durations_clock_times_and_dates():
    now = 1_700_000_000.0
    assert parse_since("90s", now) == now - 90 and parse_since("2h", now) == now - 7200
    assert parse_since("1.5m", now) == now - 90
    assert parse_since("1700000000", now) == 1_700_000_000.0
    assert parse_since("2024-05-01 12:00", now) == time.mktime((2024, 5, 1, 12, 0, 0, 0, 0, -1))
    today = time.localtime(now)
    assert parse_since("12:30", now) == time.mktime((today.tm_year, today.tm_mon, today.tm_mday, 12, 30, 0, 0, 0, -1))
    with pytest.raises(ValueError, match="use 10m, 2h"):
        parse_since("yesterday", now)


def test_lines_offset_is_where_the_last_n_lines_begin():
    text = b"a\nb\nc\n"
    assert [text[lines_offset(text, n):] for n in range(5)] == [b"", b"c\n", b"b\nc\n", text, text]
    partial = b"x\nno newline"
    assert partial[lines_offset(partial, 1):] == b"no newline"


def test_since_offset_starts_at_the_run_running_then():
    def marker(clock: str) -> bytes:
        return f"-- started 2024-05-01 {clock} (requested) --\n".encode()

    text = marker("12:00:00") + b"one\n" + marker("13:00:00") + b"two\n"
    at = lambda clock: time.mktime(time.strptime(f"2024-05-01 {clock}", "%Y-%m-%d %H:%M:%S"))  # noqa: E731
    assert text[since_offset(text, at("12:30:00")):].startswith(marker("12:00:00"))
    assert text[since_offset(text, at("13:30:00")):] == marker("13:00:00") + b"two\n"
    assert text[since_offset(text, at("11:00:00")):] == text
    assert since_offset(b"no markers\n", at("11:00:00")) == len(b"no markers\n")


def test_log_tail(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(str(log), 2) == ["line 98", "line 99"]
    assert log_tail(str(tmp_path / "missing.log")) == []


def test_generated_stubs_import_their_siblings_relatively(tmp_path):
    grpc_file = tmp_path / "hello_pb2_grpc.py"
    grpc_file.write_text("import grpc\nimport hello_pb2 as hello__pb2\nimport other_pb2 as other__pb2\n"
                         "from google.protobuf import empty_pb2 as e\n")
    relative_imports([grpc_file], {"hello_pb2"})
    assert grpc_file.read_text() == ("import grpc\nfrom . import hello_pb2 as hello__pb2\n"
                                     "import other_pb2 as other__pb2\nfrom google.protobuf import empty_pb2 as e\n")


@pytest.mark.parametrize("text,expected", [
    ('{\n  progam: {},\n}', "2: progam: unknown key 'progam' (did you mean 'program'?)"),
    ('{\n  program: { runner: "python", module: "m",\n    idle_timout: "3s" },\n}',
     "3: program.idle_timout: unknown key 'idle_timout' (did you mean 'idle_timeout'?)"),
    ('{\n  use: [\n    { protocl: "a.B" },\n  ],\n}', "3: use[0].protocl: unknown key 'protocl' (did you mean 'protocol'?)"),
    ('{\n  children: [\n    { name: "a", url: "a.cml", startp: "eager" },\n  ],\n}',
     "3: children[0].startp: unknown key 'startp' (did you mean 'startup'?)"),
    ('{\n  zzzzzz: 1,\n}', "2: zzzzzz: unknown key 'zzzzzz'"),
])
def test_a_mistyped_manifest_key_gets_did_you_mean(text, expected):
    with pytest.raises(ManifestError) as error:
        compile_text(text, "m.cml")
    assert any(str(p) == f"m.cml:{expected}" for p in error.value.problems), error.value.problems
