"""`cm`'s exit codes: the one table (documented in docs/cli.md, "Exit codes").

    0 ok · 1 error · 2 usage · 3 no manager running · 4 not found · 130 interrupted

A command returns EXIT_OK or EXIT_ERROR itself; anything it raises is mapped here by
``exit_code``: an error the CLI made by its class, an error the manager answered
(``RemoteError``) by its gRPC status code. Every other CmError is EXIT_ERROR.

    exit_code(ManagerNotRunning(".cm"))    # 3
    exit_code(InstanceNotFound("/x"))      # 4 (a moniker fragment that matches nothing)
    exit_code(remote_not_found)            # 4 (the manager answered NOT_FOUND)
"""

from __future__ import annotations

from ..errors import CmError, InstanceNotFound, ManagerNotRunning

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_NOT_FOUND", "EXIT_NO_MANAGER", "EXIT_OK", "EXIT_USAGE",
           "exit_code"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_MANAGER, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

# What the command raised, by class (the first of its classes found here).
BY_ERROR: dict[type, int] = {
    ManagerNotRunning: EXIT_NO_MANAGER,      # no socket, or the manager is UNAVAILABLE
    InstanceNotFound: EXIT_NOT_FOUND,        # a moniker fragment that matches no instance
    KeyboardInterrupt: EXIT_INTERRUPTED,     # Ctrl-C (outside a --follow, which ends with 0)
    BrokenPipeError: EXIT_OK,                # the reader left (cm list | head -1): not an error
}

# What the manager answered (RemoteError.code), by gRPC status code name: api/status.py
# maps InstanceNotFound and CollectionNotFound to NOT_FOUND.
BY_STATUS: dict[str, int] = {
    "NOT_FOUND": EXIT_NOT_FOUND,
}


def exit_code(error: BaseException) -> int:
    """The exit code of a command that raised ``error``."""
    status = getattr(error, "code", None)  # RemoteError's grpc.StatusCode (no grpc import here)
    if isinstance(error, CmError) and hasattr(status, "name"):
        return BY_STATUS.get(status.name, EXIT_ERROR)
    for cls in type(error).__mro__:
        if cls in BY_ERROR:
            return BY_ERROR[cls]
    return EXIT_ERROR
