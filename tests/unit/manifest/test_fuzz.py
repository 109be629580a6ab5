"""Fuzz the compiler: every input is accepted, or refused with located problems (a file and
a line), and nothing else is ever raised. Bounded: a few hundred inputs of each kind, a few
seconds in all. Includes may only be read from an empty package root, as in the manager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from component_manager.errors import ManifestError
from component_manager.manifest import compile_text
from component_manager.manifest.schema import TOP_LEVEL_KEYS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "components").rglob("*.cml")) + sorted((ROOT / "tests").rglob("*.cml"))
SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KEYS = [*TOP_LEVEL_KEYS, "runner", "module", "binary", "entry", "args", "env", "name", "url",
        "startup", "durability", "protocol", "storage", "directory", "config", "from", "to", "as",
        "path", "type", "value", "default", "max_size", "max_count", "element", "availability",
        "dependency", "stop_timeout", "idle_timeout", "start_timeout", "memory_limit", "ready",
        "lifecycle", "stop_event", "key", "mutability", "facets", "include"]
STRINGS = st.one_of(
    st.sampled_from(["python", "process", "inproc", "echo.Echo", "#a", "self", "parent", "void",
                     "5s", "9" * 40 + "s", "9" * 5000 + "ms", "1" + "0" * 30 + "GiB", "uint8", "vector",
                     "string", "a\0b", "/dev/zero", "/etc/shadow", "a" * 300 + ".cml", "x" * 70_000]),
    st.text(max_size=20))


class Huge:
    """An integer of 4,400 digits, as written (Python will not even print one)."""

    def __repr__(self) -> str:
        return "Huge()"


NUMBERS = st.one_of(st.integers(), st.integers(min_value=10**30, max_value=10**40),
                    st.floats(allow_nan=True), st.just(Huge()))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=30)
DOCUMENTS = st.one_of(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8), VALUES)


def to_json5(value) -> str:
    """JSON text; numbers too large for ``json`` to print are written as they are."""
    if isinstance(value, Huge):
        return "9" * 4400
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, list):
        return "[" + ",".join(to_json5(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json5(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def accepted_or_located(text: str, roots) -> None:
    try:
        compile_text(text, "fuzz.cml", roots=roots)
    except ManifestError as e:
        assert e.problems, "a refusal names at least one problem"
        for problem in e.problems:
            assert problem.file and problem.line >= 1, f"unlocated: {problem}"
            assert len(problem.message) <= 400, f"a problem echoes too much: {problem.message[:80]}..."


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return [tmp_path_factory.mktemp("empty-package-root")]


@SETTINGS
@given(document=DOCUMENTS)
def test_generated_documents(roots, document):
    accepted_or_located(to_json5(document), roots)


@SETTINGS
@given(text=st.text(max_size=200))
def test_random_text(roots, text):
    accepted_or_located(text, roots)


HOSTILE_INSERTS = ["[" * 300, "{a:" * 300, "9" * 5000, "\\u0000", "\0", "/*", "'", '"', "}", "]",
                   ",", ":", "0x" + "f" * 100, "include: ['../../etc/passwd'],", "\ud800", "\n"]


@SETTINGS
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_mutated_examples(roots, example, data):
    text = example.read_text()
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 20))
        insert = data.draw(st.one_of(st.sampled_from(HOSTILE_INSERTS), st.text(max_size=5)))
        text = text[:at] + insert + text[at + cut:]
    accepted_or_located(text, roots)
