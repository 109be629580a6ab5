"""Component manifests: ``.cml`` source in, verified ``.cm`` (Cap'n Proto) out, and the
runtime form, ComponentDecl, that the rest of the manager reads.

    decl = compile_file("components/echo/echo_server.cml")   # ManifestError: every problem
    Path("echo_server.cm").write_bytes(encode(decl))
    load("echo_server.cm") == decl                            # CompiledManifestError if tampered
"""

from __future__ import annotations

from .codec import decode, encode, load
from .compile import compile_file, compile_text
from .decl import (CAPABILITY_KINDS, RUNNERS, CapabilityDecl, ChildDecl, CollectionDecl,
                   ComponentDecl, ConfigFieldDecl, ExposeDecl, OfferDecl, ProgramDecl, UseDecl)
from .format import format_text

__all__ = [
    "CAPABILITY_KINDS", "RUNNERS", "CapabilityDecl", "ChildDecl", "CollectionDecl",
    "ComponentDecl", "ConfigFieldDecl", "ExposeDecl", "OfferDecl", "ProgramDecl", "UseDecl",
    "compile_file", "compile_text", "decode", "encode", "format_text", "load",
]
