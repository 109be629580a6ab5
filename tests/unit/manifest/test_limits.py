"""Hostile manifests: depth, size and number limits. Each is refused with located problems
(``file:line: key.path: message``), never a traceback, RecursionError or OverflowError."""

import pytest

from component_manager.errors import ManifestError
from component_manager.manifest import compile_text

PROGRAM = "program: { runner: 'python', module: 'm', %s },"

# (name, cml text, the key path of the expected problem or "" for a syntax error, message fragment)
CASES = [
    ("500 levels of nesting", "{ config: { a: { type: 'bool', default: " + "[" * 500 + "]" * 500 + " } } }",
     "config.a.default[0]", "nested more than"),
    ("500 nested objects", "{ program: { runner: 'python', module: 'm', env: " + "{a:" * 500 + "1" + "}" * 500 + " } }",
     "program.env.a", "nested more than"),
    ("an integer of 5,000 digits", "{ config: { a: { type: 'uint64', default: " + "9" * 5000 + " } } }",
     "config.a.default", "number is too long"),
    ("a hex integer of 5,000 digits", "{ config: { a: { type: 'uint8', default: 0x" + "f" * 5000 + " } } }",
     "config.a.default", "number is too long"),
    ("a duration of 40 digits", "{ " + PROGRAM % ("stop_timeout: '" + "9" * 40 + "s'") + " }",
     "program.stop_timeout", "too long"),
    ("a duration of 5,000 digits", "{ " + PROGRAM % ("idle_timeout: '" + "9" * 5000 + "s'") + " }",
     "program.idle_timeout", "invalid duration"),
    ("a size of 40 digits", "{ " + PROGRAM % ("memory_limit: '" + "9" * 40 + "GiB'") + " }",
     "program.memory_limit", "too large"),
    ("a max_size over 32 bits", "{ config: { a: { type: 'string', max_size: " + "9" * 40 + " } } }",
     "config.a.max_size", "less than or equal"),
    ("a max_count over 32 bits", "{ config: { a: { type: 'vector', max_count: 4294967296, element: { type: 'bool' } } } }",
     "config.a.max_count", "less than or equal"),
    ("an include name over NAME_MAX", "{ include: ['" + "a" * 300 + ".cml'] }", "include[0]", "cannot find include"),
    ("a NUL byte in an include", "{ include: ['a\\u0000b.cml'] }", "include[0]", "NUL byte"),
    ("a NUL byte in a child URL", "{ children: [ { name: 'a', url: 'a\\u0000b.cml' } ] }", "children[0].url", "NUL"),
    ("a NUL byte in a use path", "{ use: [ { storage: 'data', path: '/da\\u0000ta' } ] }", "use[0].path", "NUL"),
    ("a NUL byte in a program arg", "{ " + PROGRAM % "args: ['a\\u0000']" + " }", "program.args[0]", "NUL"),
    ("a list of 100,001 elements", "{ " + PROGRAM % ("args: [" + "'a'," * 100_001 + "]") + " }",
     "program.args", "more than 100000 elements"),
]


@pytest.mark.parametrize("name, text, key_path, fragment", CASES, ids=[c[0] for c in CASES])
def test_hostile_manifest_is_refused_with_a_located_problem(name, text, key_path, fragment):
    with pytest.raises(ManifestError) as caught:
        compile_text(text, "x.cml")
    problems = caught.value.problems
    assert all(p.file == "x.cml" and p.line >= 1 for p in problems), str(caught.value)
    assert any(p.key_path.startswith(key_path) and fragment in p.message for p in problems), str(caught.value)
    assert all(len(str(p)) < 500 for p in problems), "a problem must not echo a huge value"


@pytest.mark.parametrize("text", ["42", "'a string'", "[1, 2]", "null", "true", "\n\n  7"])
def test_a_document_that_is_not_an_object_is_refused_at_line_1(text):
    with pytest.raises(ManifestError) as caught:
        compile_text(text, "x.cml")
    assert [str(p) for p in caught.value.problems] == ["x.cml:1: a manifest is an object ({ ... })"]


def test_a_manifest_over_the_size_limit_is_refused_before_parsing():
    from component_manager.manifest.limits import MAX_MANIFEST_BYTES

    text = "{ /*" + " " * MAX_MANIFEST_BYTES + "*/ }"
    with pytest.raises(ManifestError) as caught:
        compile_text(text, "x.cml")
    assert str(caught.value).startswith("x.cml:1: ") and "larger than" in str(caught.value)


def test_an_include_that_is_not_a_regular_file_is_refused(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.cml")
    (tmp_path / "main.cml").write_text("{ include: ['fifo.cml', '/dev/zero'] }")
    from component_manager.manifest import compile_file

    with pytest.raises(ManifestError) as caught:
        compile_file(tmp_path / "main.cml")
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 2 and all("not a regular file" in m for m in messages), messages


def test_a_config_value_may_hold_a_nul_byte():
    text = "{ config: { a: { type: 'string', max_size: 8, default: 'a\\u0000b' } } }"
    assert compile_text(text, "x.cml").config[0].default == "a\0b"
