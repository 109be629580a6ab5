"""Generate Python gRPC stubs for a component's own ``.proto`` that import correctly inside
its package: `cm protoc` (or ``python -m component_manager.protoc``), built on grpcio-tools.

    cm protoc hello/hello.proto            # hello/hello_pb2.py, hello_pb2_grpc.py, hello_pb2.pyi
    cm protoc protos/*.proto -o hello/     # into another folder (a package)
    cm protoc a.proto -I ../common         # more folders to find imported .proto files

Plain ``grpc_tools.protoc`` writes ``import hello_pb2 as hello__pb2`` into
``hello_pb2_grpc.py``: an absolute import that only works when the output folder itself is
on ``sys.path``, never from ``hello.server`` in a package. Here every import of a module
generated into the same folder becomes relative (``from . import hello_pb2 as ...``), so
the stubs work wherever the package is imported from. Imports of other modules (the
well-known types, ``google.protobuf...``) are left alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .errors import CmError

__all__ = ["generate", "main", "relative_imports"]


def generate(protos: list[str], out_dir: str | None = None, include: list[str] = ()) -> list[Path]:
    """Run protoc on ``protos`` (each found through its own folder first, then ``include``)
    into ``out_dir`` (default: the first proto's folder); returns the files written."""
    try:
        from grpc_tools import protoc
        from importlib.resources import files
    except ImportError:
        raise CmError("cm protoc needs grpcio-tools: pip install grpcio-tools") from None
    paths = [Path(p) for p in protos]
    for path in paths:
        if not path.is_file():
            raise CmError(f"{path}: no such .proto file")
    out = Path(out_dir) if out_dir else paths[0].parent
    out.mkdir(parents=True, exist_ok=True)
    roots = list(dict.fromkeys([*(str(p.parent.resolve()) for p in paths), *include]))
    well_known = str(files("grpc_tools") / "_proto")
    args = ["protoc", *(f"-I{r}" for r in roots), f"-I{well_known}",
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            *(str(p.resolve()) for p in paths)]
    if protoc.main(args) != 0:
        raise CmError(f"protoc failed on {', '.join(protos)} (its message is above)")
    made = sorted(f for p in paths for f in out.glob(f"{p.stem}_pb2*.py*"))
    relative_imports(made, {f.stem for f in out.glob("*_pb2.py")})  # also those of earlier runs
    return made


def relative_imports(files: list[Path], local: set[str]) -> None:
    """Rewrite ``import X_pb2 as Y`` to ``from . import X_pb2 as Y`` for each X_pb2 in ``local``."""
    pattern = re.compile(r"^import (\w+) as (\w+)$", re.MULTILINE)

    def fix(m: re.Match) -> str:
        return f"from . import {m.group(1)} as {m.group(2)}" if m.group(1) in local else m.group(0)

    for f in files:
        text = f.read_text()
        fixed = pattern.sub(fix, text)
        if fixed != text:
            f.write_text(fixed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protos", nargs="+", metavar="FILE.proto")
    parser.add_argument("-o", "--out", metavar="DIR", help="where to write (default: the first .proto's folder)")
    parser.add_argument("-I", "--include", action="append", default=[], metavar="DIR",
                        help="another folder to find imported .proto files in")


def run(args) -> int:
    made = generate(args.protos, args.out, args.include)
    out = Path(args.out) if args.out else Path(args.protos[0]).parent
    for f in made:
        print(f)
    if not (out / "__init__.py").exists():
        print(f"cm: note: {out} has no __init__.py; the stubs import each other relatively, "
              f"so it must be a package", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m component_manager.protoc", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except CmError as e:
        print(f"cm: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
