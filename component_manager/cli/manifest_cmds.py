"""`cm compile`, `cm validate`, `cm format`: manifests, offline.

    cm compile components/echo/echo_server.cml -o echo_server.cm
    cm validate components/*.cml build/*.cm      # every problem, one per line, on stderr
    cm format realm.cml --in-place

Imports happen inside the handlers so that `cm`'s startup stays light.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import CmError, CompiledManifestError, ManifestError, Problem
from ..manifest import compile_file, encode, format_text, load
from ..manifest.limits import SourceError, read_source
from .exitcodes import EXIT_ERROR, EXIT_OK

__all__ = ["register"]


def register(sub, command: str) -> None:
    """Add the parser of ``command``: compile, validate or format."""
    {"compile": _register_compile, "validate": _register_validate, "format": _register_format}[command](sub)


def _register_compile(sub) -> None:
    p = sub.add_parser("compile", help="compile a .cml into a verified .cm")
    p.add_argument("source", metavar="SRC.cml")
    p.add_argument("-o", "--output", required=True, metavar="OUT.cm")
    p.add_argument("-I", "--include-path", action="append", default=[], metavar="DIR",
                   help="where to look for includes (after the including file's directory)")
    p.add_argument("--json", action="store_true", help="print {file, ok, fingerprint, problems} as JSON")
    p.set_defaults(handler=_compile)


def _register_validate(sub) -> None:
    p = sub.add_parser("validate", help="check .cml sources and .cm files; print every problem")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-I", "--include-path", action="append", default=[], metavar="DIR")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {file, ok, problems: [{file, line, column, key_path, message}]}")
    p.set_defaults(handler=_validate)


def _register_format(sub) -> None:
    p = sub.add_parser("format", help="print a .cml in canonical form (comments are dropped)",
                       description="Print FILE in canonical form: fixed key order, 4-space indent, "
                                   "unquoted keys. Comments are NOT kept.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--in-place", action="store_true", help="rewrite FILE instead of printing")
    p.add_argument("--json", action="store_true", help="print {file, ok, problems} as JSON")
    p.set_defaults(handler=_format)


def _problem_dict(p) -> dict:
    return {"file": p.file, "line": p.line, "column": p.column, "key_path": p.key_path, "message": p.message}


def _check(path: str, include_paths) -> tuple[list, object]:
    """(problems, decl) for one file: a .cm is loaded and verified, anything else compiled."""
    try:
        decl = load(path) if path.endswith(".cm") else compile_file(path, include_paths)
        return [], decl
    except ManifestError as e:
        return e.problems, None
    except CompiledManifestError as e:
        return [Problem(path, 0, "", e.reason)], None


def _validate(args) -> int:
    results = []
    for path in args.files:
        problems, _ = _check(path, args.include_path)
        results.append({"file": path, "ok": not problems, "problems": [_problem_dict(p) for p in problems]})
        for p in problems:
            print(p, file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_ERROR


def _compile(args) -> int:
    problems, decl = _check(args.source, args.include_path)
    if not problems:
        try:
            Path(args.output).write_bytes(encode(decl))
        except OSError as e:
            raise CmError(f"cannot write {args.output}: {e.strerror or e}") from None
    if args.json:
        print(json.dumps({"file": args.source, "ok": not problems, "output": args.output,
                          "fingerprint": decl.fingerprint if decl else None,
                          "problems": [_problem_dict(p) for p in problems]}, indent=2))
    for p in problems:
        print(p, file=sys.stderr)
    return EXIT_ERROR if problems else EXIT_OK


def _format(args) -> int:
    try:
        text = read_source(args.file).decode("utf-8")
    except (SourceError, UnicodeDecodeError) as e:
        raise CmError(f"cannot read {args.file}: {e}") from None
    try:
        out = format_text(text, args.file)
    except ManifestError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return EXIT_ERROR
    if args.in_place:
        Path(args.file).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return 0
