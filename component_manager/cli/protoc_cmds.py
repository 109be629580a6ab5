"""`cm protoc`: gRPC stubs for a component's own .proto that import correctly inside its
package (``component_manager/protoc.py``; grpcio-tools is imported only here)."""

from __future__ import annotations

__all__ = ["register"]


def register(sub, command: str) -> None:
    """Add the parser of ``command`` (protoc)."""
    from .. import protoc

    parser = sub.add_parser("protoc", help="generate Python gRPC stubs for your .proto, importable in your package")
    protoc.add_arguments(parser)
    parser.set_defaults(handler=protoc.run)
