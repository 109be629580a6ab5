"""`cm`'s parser: a known command builds only its own parser, and parses as the full one."""

import pytest

from component_manager.cli import main

pytestmark = pytest.mark.timeout(10)


def subcommands(parser) -> list[str]:
    return list(parser._subparsers._group_actions[0].choices)


def test_the_command_table_is_what_the_full_parser_registers_in_order():
    assert subcommands(main.build_parser()) == list(main.COMMANDS)
    for command in main.COMMANDS:
        assert subcommands(main.build_parser(command)) == [command]


@pytest.mark.parametrize("argv, command", [
    (["show", "x"], "show"),
    (["--state-dir", "/d", "show", "x"], "show"),
    (["--state-dir=/d", "storage", "list"], "storage"),
    (["manager", "run", "--state-dir", "/d"], "manager"),
    ([], None),
    (["--state-dir", "/d"], None),
    (["--help"], None),
    (["-h", "show"], None),
    (["bogus", "show"], None),
    (["--state", "/d", "show"], None),  # an abbreviation argparse accepts: the full parser decides
])
def test_command_word_is_the_command_or_none_when_unsure(argv, command):
    assert main.command_word(argv) == command


@pytest.mark.parametrize("argv", [
    ["--state-dir", "/d", "show", "/x", "--json"],
    ["logs", "-f", "counter"],
    ["storage", "delete", "c", "--state-dir", "/e"],
    ["manager", "run", "--root", "r.cml"],
    ["events", "--type", "started", "--type", "stopped"],
])
def test_the_command_parser_parses_as_the_full_parser(argv):
    just_its_own = main.build_parser(main.command_word(argv))
    assert vars(just_its_own.parse_args(argv)) == vars(main.build_parser().parse_args(argv))


def test_run_command_returns_the_exit_code_in_process(tmp_path, capsys):
    assert main.run_command(["--state-dir", str(tmp_path), "show", "x"]) == main.EXIT_NO_MANAGER
    assert capsys.readouterr().err == f"cm: no manager is running at {tmp_path} (start one with `cm manager run`)\n"


def test_exit_codes_come_from_one_table():
    """docs/cli.md's exit codes, as cli/exitcodes.py maps what a command raised."""
    import grpc

    from component_manager.cli.client import RemoteError
    from component_manager.cli.exitcodes import exit_code
    from component_manager.cli.monikers import AmbiguousMoniker
    from component_manager.errors import CmError, InstanceNotFound, ManagerNotRunning, RouteError

    class Status(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

        def details(self):
            return "refused"

    assert [main.EXIT_OK, main.EXIT_ERROR, main.EXIT_USAGE, main.EXIT_NO_MANAGER, main.EXIT_NOT_FOUND] == [0, 1, 2, 3, 4]
    assert exit_code(ManagerNotRunning("/d")) == 3
    assert exit_code(InstanceNotFound("frag")) == 4
    assert exit_code(RemoteError(Status(grpc.StatusCode.NOT_FOUND))) == 4
    assert exit_code(RemoteError(Status(grpc.StatusCode.FAILED_PRECONDITION))) == 1
    assert exit_code(AmbiguousMoniker("e", ["/a", "/b"])) == 1
    assert exit_code(RouteError("/a", "c", [], "broken")) == 1
    assert exit_code(CmError("anything")) == 1
    assert exit_code(KeyboardInterrupt()) == 130
    assert exit_code(BrokenPipeError()) == 0
