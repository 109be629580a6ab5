"""Component manifests: ``.cml`` source in, verified ``.cm`` (Cap'n Proto) out, and the
runtime form, ComponentDecl, that the rest of the manager reads.

    decl = compile_file("components/echo/echo_server.cml")   # ManifestError: every problem
    Path("echo_server.cm").write_bytes(encode(decl))
    load("echo_server.cm") == decl                            # CompiledManifestError if tampered

``codec`` (and so capnp) is imported only when encode/decode/load is first used.
"""

from __future__ import annotations

from .compile import compile_file, compile_text
from .decl import (CAPABILITY_KINDS, RUNNERS, CapabilityDecl, ChildDecl, CollectionDecl,
                   ComponentDecl, ConfigFieldDecl, ExposeDecl, OfferDecl, ProgramDecl, UseDecl)
from .format import format_text

__all__ = [
    "CAPABILITY_KINDS", "RUNNERS", "CapabilityDecl", "ChildDecl", "CollectionDecl",
    "ComponentDecl", "ConfigFieldDecl", "ExposeDecl", "OfferDecl", "ProgramDecl", "UseDecl",
    "compile_file", "compile_text", "decode", "encode", "format_text", "load",
]


def encode(decl: ComponentDecl) -> bytes:
    """The ``.cm`` bytes of ``decl`` (see codec.encode)."""
    from .codec import encode as _encode
    return _encode(decl)


def decode(data: bytes, path: str = "<bytes>") -> ComponentDecl:
    """Verify and read ``.cm`` bytes (see codec.decode). Raises CompiledManifestError."""
    from .codec import decode as _decode
    return _decode(data, path)


def load(path) -> ComponentDecl:
    """Read and verify the ``.cm`` at ``path`` (see codec.load). Raises CompiledManifestError."""
    from .codec import load as _load
    return _load(path)
