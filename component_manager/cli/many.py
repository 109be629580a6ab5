"""`cm start a b c` / `cm stop a b c`: several instances in one request (StartMany /
StopMany), each started or stopped as alone, all at once.

Each MONIKER is absolute, a unique fragment (``monikers.py``), or a pattern with ``*``,
``?`` or ``[...]`` (``/workers:*``: every instance it fits; quote it from the shell).
Fragments and patterns are matched against one ``ListInstances``. Output: one line per
instance that went well on stdout, one ``cm: ...`` line per failure on stderr (one failure
does not stop the others); ``--json``: a list, one object per instance (a summary, or
``{"moniker", "error", "type", "code"}``). Exit code: 0 when all went well; else the one
``exitcodes.py`` gives the failures when they agree (4: none of them exists), or 1.
"""

from __future__ import annotations

import fnmatch
import json
import sys

from .._generated import manager_pb2
from ..errors import InstanceNotFound
from .exitcodes import BY_STATUS, EXIT_ERROR, EXIT_OK, exit_code
from .monikers import AmbiguousMoniker, match_fragment

__all__ = ["is_many", "run"]

_PATTERN = "*?["


def is_many(monikers: list[str]) -> bool:
    """Whether the command names several instances (or a pattern): then it goes as one
    StartMany / StopMany; one plain moniker keeps the single call and its output."""
    return len(monikers) > 1 or any(c in monikers[0] for c in _PATTERN)


def run(client, args, method, line) -> int:
    """Resolve ``args.moniker``, call ``method`` once, print; the exit code. ``line(reply)``
    is (text, JSON object) of one StartReply / StopReply."""
    targets, failures = _resolve(client, args.moniker)
    rows, codes = [], []
    if targets:
        reply = client.call(method, manager_pb2.InstancesRequest(monikers=targets))
        for outcome in reply.outcomes:
            kind = outcome.WhichOneof("result")
            if kind == "failure":
                failures.append((outcome.moniker, outcome.failure.message, outcome.failure.error,
                                 outcome.failure.code))
                continue
            text, data = line(getattr(outcome, kind))
            rows.append(data)
            if not args.json:
                print(text)
    for moniker, message, error_type, code in failures:
        print(f"cm: {message}", file=sys.stderr)
        codes.append(BY_STATUS.get(code, EXIT_ERROR) if code else _local_code(error_type))
        rows.append({"moniker": moniker, "error": message, "type": error_type, "code": code or None})
    if args.json:
        print(json.dumps(rows, indent=2))
    if not codes:
        return EXIT_OK
    return codes[0] if len(set(codes)) == 1 else EXIT_ERROR


def _resolve(client, texts: list[str]) -> tuple[list[str], list[tuple]]:
    """The absolute monikers ``texts`` name (in order, each once), and a failure (moniker,
    message, error class, "") for each text that names none or several."""
    known = None
    if any(not t.startswith("/") or any(c in t for c in _PATTERN) for t in texts):
        reply = client.call(client.query.ListInstances, manager_pb2.ListInstancesRequest())
        known = [s.moniker for s in reply.instances]
    targets: dict[str, None] = {}
    failures = []
    for text in texts:
        if any(c in text for c in _PATTERN):
            found = [m for m in known if m != "/" and fnmatch.fnmatchcase(m, text)]
            if not found:
                failures.append(_failure(text, InstanceNotFound(text)))
            targets.update(dict.fromkeys(found))
        elif text.startswith("/"):
            targets[text] = None
        else:
            found = match_fragment(text, known)
            if len(found) == 1:
                targets[found[0]] = None
            else:
                failures.append(_failure(text, AmbiguousMoniker(text, found) if found else InstanceNotFound(text)))
    return list(targets), failures


def _failure(text: str, error) -> tuple:
    return (text, str(error), type(error).__name__, "")


def _local_code(error_type: str) -> int:
    return exit_code(InstanceNotFound("")) if error_type == "InstanceNotFound" else EXIT_ERROR
