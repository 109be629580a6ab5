"""`cm`: the command line. Each command module registers its subcommands here.

Exit codes (one table, documented in README.md):
    0 ok · 1 error · 2 usage · 3 no manager running · 4 not found
Errors are one line on stderr, never a traceback. Only what a command needs is imported,
so that quick commands stay quick.
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_MANAGER, EXIT_NOT_FOUND = 0, 1, 2, 3, 4

# Command modules, each with register(subparsers) that sets args.handler(args) -> int.
_COMMAND_MODULES = ("manifest_cmds", "manager_cmds", "observe_cmds", "storage_cmds", "completion_cmds")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as documented
        self.exit(EXIT_USAGE, f"cm: {message}\n")


class _CommandParser(_Parser):
    """A subcommand's parser: it takes ``--state-dir`` too, so ``cm manager run --state-dir D``
    works as well as ``cm --state-dir D manager run`` (SUPPRESS keeps the global default)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="cm", description="Drive a component manager and its manifests.")
    parser.add_argument("--state-dir", default=os.environ.get("CM_STATE_DIR", ".cm"),
                        help="the manager's state directory (env CM_STATE_DIR, default ./.cm)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import CmError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except CmError as e:
        print(f"cm: {e}", file=sys.stderr)
        return getattr(e, "exit_code", EXIT_ERROR)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
