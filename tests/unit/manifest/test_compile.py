"""Compiling the example realm, defaults, includes, and the .cm codec (incl. tampering)."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from component_manager.errors import CompiledManifestError, ManifestError
from component_manager.manifest import compile_file, compile_text, decode, encode, format_text, load
from component_manager.manifest import codec
from component_manager.manifest.decl import OfferDecl, UseDecl

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "components").rglob("*.cml"))
# Real Fuchsia manifests, kept outside this repository: set CM_CML_CORPUS to their folder.
CORPUS = Path(os.environ["CM_CML_CORPUS"]) if os.environ.get("CM_CML_CORPUS") else None


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_realm_compiles_and_round_trips(path):
    decl = compile_file(path)
    assert decode(encode(decl), str(path)) == decl
    assert decode(encode(decl)).fingerprint == decl.fingerprint == hashlib.sha256(codec._manifest_bytes(decl)).hexdigest()


def test_realm_has_the_documented_children_and_routes():
    decl = compile_file(ROOT / "components" / "realm.cml")
    assert [c.name for c in decl.children] == ["echo_server", "echo_client", "counter", "flaky", "unhealthy"]
    assert decl.collection("workers").durability == "persistent"
    assert decl.offer_to("echo_client", "protocol", "echo.Echo") == OfferDecl(
        kind="protocol", source_name="echo.Echo", source="child", target="child",
        target_child="echo_client", source_child="echo_server", target_name="echo.Echo")
    assert decl.offer_to("workers", "storage", "data").target == "collection"


def test_defaults_are_filled_in():
    decl = compile_file(ROOT / "components" / "echo" / "echo_server.cml")
    p = decl.program
    assert (p.ready, p.stop_event, p.idle_timeout_ms, p.stop_timeout_ms, p.start_timeout_ms) == \
        ("serving", "notify", 3000, 5000, 10000)
    client = compile_file(ROOT / "components" / "echo" / "echo_client.cml")
    assert client.program.ready == "spawned"  # declares no protocol
    assert client.uses == (UseDecl(kind="protocol", source_name="echo.Echo", source="parent",
                                   target_name="echo.Echo", path="/svc/echo.Echo"),)


def test_program_settings_normalize():
    decl = compile_text('{ program: { runner: "process", binary: "bin/x", args: ["-v"], env: { B: "2", A: "1" },'
                        ' start_timeout: "1m30s", idle_timeout: "250ms", memory_limit: "256MiB" } }')
    p = decl.program
    assert (p.start_timeout_ms, p.idle_timeout_ms, p.memory_limit_bytes) == (90_000, 250, 256 * 2**20)
    assert p.env == (("A", "1"), ("B", "2")) and p.args == ("-v",)


def test_ray_placement_compiles_and_round_trips():
    decl = compile_text('{ program: { runner: "ray", module: "m", node: "node1", resources: { GPU: 1, CPU: 0.5 } } }')
    p = decl.program
    assert (p.runner, p.module, p.node, p.resources) == ("ray", "m", "node1", (("CPU", 0.5), ("GPU", 1.0)))
    assert decode(encode(decl)).program == p


def test_include_merges_lists_dedups_and_points_errors_into_the_shard(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "log.shard.cml").write_text(
        '{\n  use: [\n    { protocol: "log.Sink" },\n    { protocol: "a.A" },\n  ],\n}')
    (tmp_path / "bad.shard.cml").write_text('{\n  use: [\n    { protocol: "x", from: "#nope" },\n  ],\n}')
    main = tmp_path / "main.cml"
    main.write_text('{\n  include: ["log.shard.cml"],\n  program: { runner: "python", module: "m" },\n'
                    '  use: [ { protocol: "a.A" } ],\n}')
    decl = compile_file(main, include_paths=[tmp_path / "shards"])
    assert [u.source_name for u in decl.uses] == ["a.A", "log.Sink"]
    main.write_text('{\n  include: ["bad.shard.cml", "missing.cml"],\n}')
    with pytest.raises(ManifestError) as info:
        compile_file(main)
    lines = [str(p) for p in info.value.problems]
    assert f"{tmp_path / 'bad.shard.cml'}:3: use[0].from: '#nope' is not a child" in lines
    assert any(line.startswith(f"{main}:2: include[1]: cannot find include 'missing.cml'") for line in lines)


def test_format_is_canonical_and_keeps_meaning():
    for path in EXAMPLES:
        text = path.read_text()
        out = format_text(text)
        assert format_text(out) == out
        assert compile_text(out, str(path)) == compile_text(text, str(path))
    assert format_text('{use:[{protocol:"a"}],program:{module:"m",runner:"python"}}').splitlines()[1] == "    program: {"


# -- codec -----------------------------------------------------------------------------

ECHO = compile_file(ROOT / "components" / "echo" / "echo_server.cml")
ECHO_CM = encode(ECHO)


def test_hand_written_outer_wrapper_equals_capnp_encoding():
    for size in (1, 7, 8, 9, 500):
        m = codec._Outer.new_message()
        m.version, m.fingerprint, m.manifest = 1, b"f" * 32, b"m" * size
        assert codec._outer_bytes(1, b"f" * 32, b"m" * size) == m.to_bytes()


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, len(ECHO_CM) - 1), mask=st.integers(1, 255))
def test_any_flipped_byte_is_refused(index, mask):
    data = bytearray(ECHO_CM)
    data[index] ^= mask
    with pytest.raises(CompiledManifestError):
        decode(bytes(data), "x.cm")


@settings(max_examples=100, deadline=None)
@given(length=st.integers(0, len(ECHO_CM) - 1))
def test_truncation_is_refused(length):
    with pytest.raises(CompiledManifestError):
        decode(ECHO_CM[:length], "x.cm")


def test_appended_bytes_and_wrong_version_are_refused():
    with pytest.raises(CompiledManifestError, match="x.cm: "):
        decode(ECHO_CM + b"\0" * 8, "x.cm")
    manifest = codec._manifest_bytes(ECHO)
    other = codec._outer_bytes(2, hashlib.sha256(manifest).digest(), manifest)
    with pytest.raises(CompiledManifestError, match="unknown .cm version 2"):
        decode(other, "x.cm")


def test_tampered_file_reports_fingerprint_mismatch(tmp_path):
    path = tmp_path / "e.cm"
    data = bytearray(ECHO_CM)
    data[-20] ^= 1  # inside the manifest blob
    path.write_bytes(bytes(data))
    with pytest.raises(CompiledManifestError, match="fingerprint mismatch"):
        load(path)


# -- generated manifests round-trip ------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_cap_names = st.from_regex(r"[a-z][a-z0-9.]{0,12}", fullmatch=True)
_arg_text = st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=5)  # validate refuses NUL


@st.composite
def _cml(draw):
    children = draw(st.lists(_names, max_size=4, unique=True))
    collections = draw(st.lists(_names.filter(lambda n: n not in children), max_size=2, unique=True))
    protocols = draw(st.lists(_cap_names, max_size=4, unique=True))
    doc = {"capabilities": [{"protocol": p} for p in protocols],
           "children": [{"name": c, "url": f"{c}.cml", "startup": draw(st.sampled_from(["lazy", "eager"]))}
                        for c in children],
           "collections": [{"name": c, "durability": "persistent"} for c in collections],
           "expose": [{"protocol": p, "from": "self"} for p in protocols],
           "use": [{"protocol": p, "availability": "optional"} for p in draw(st.lists(_cap_names, max_size=3, unique=True))],
           "config": {k: {"type": "string", "max_size": 16, "default": draw(st.text(max_size=4))}
                      for k in draw(st.lists(_names, max_size=3, unique=True))}}
    targets = [f"#{t}" for t in children + collections]
    if targets and protocols:
        doc["offer"] = [{"protocol": protocols[0], "from": "self", "to": targets}]
    if draw(st.booleans()):
        doc["program"] = {"runner": "python", "module": "pkg.mod", "args": draw(st.lists(_arg_text, max_size=3)),
                          "idle_timeout": f"{draw(st.integers(0, 10**6))}ms"}
    return json.dumps(doc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_cml())
def test_generated_manifests_compile_encode_and_load_back_equal(text):
    decl = compile_text(text, "gen.cml")
    again = decode(encode(decl), "gen.cm")
    assert again == decl and again.fingerprint == decl.fingerprint
    assert encode(again) == encode(decl)


# -- the Fuchsia corpus ----------------------------------------------------------------

CORPUS_FILES = sorted(CORPUS.glob("*.cml")) if CORPUS and CORPUS.is_dir() else []


@pytest.mark.skipif(not CORPUS_FILES, reason="set CM_CML_CORPUS to a folder of Fuchsia .cml files")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name[:60])
def test_fuchsia_manifest_is_accepted_or_refused_with_located_problems(path):
    try:
        compile_file(path)
    except ManifestError as e:
        assert e.problems
        for p in e.problems:
            assert p.file == str(path) and p.line > 0 and p.key_path, str(p)
            assert str(p).startswith(f"{path}:{p.line}: {p.key_path}: ")
            assert "\n" not in str(p) and "pydantic" not in str(p)
