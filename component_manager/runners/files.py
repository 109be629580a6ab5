"""What a program is made of on disk, and a stamp of it: a reload restarts a running program
whose files changed even when its manifest did not.

The files: the ``python`` runner's module source (``a/b/c.py`` or ``a/b/c/__init__.py``
under the package directory), the ``process`` runner's binary. The stamp is their size and
modification time (ns): cheap enough to take at every start (one ``stat`` each).

Example::

    files_stamp(program, Path("/srv/pkg"))   # (("/srv/pkg/components/counter/main.py", 1201, 17...),)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["files_stamp", "program_files"]


def program_files(program, package_dir) -> list[Path]:
    base = Path(package_dir or ".")
    if program.runner == "python" and program.module:
        stem = base.joinpath(*program.module.split("."))
        return [stem.with_suffix(".py") if stem.with_suffix(".py").exists() else stem / "__init__.py"]
    if program.runner == "process" and program.binary:
        binary = Path(program.binary)
        return [binary if binary.is_absolute() else base / binary]
    return []


def files_stamp(program, package_dir) -> tuple:
    stamp = []
    for path in program_files(program, package_dir):
        try:
            st = os.stat(path)
            stamp.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append((str(path), -1, -1))
    return tuple(stamp)
