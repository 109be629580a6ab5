"""The JSON5 parser: values, key positions, and syntax errors with line and column."""

import math

import pytest

from component_manager.errors import ManifestError
from component_manager.manifest.json5 import parse


def test_json5_features_parse_to_plain_values():
    doc = parse("""// comment
{
    /* block */ unquoted: 'single',
    "double": "a\\nb",
    hex: 0x1F, neg: -.5, inf: +Infinity,
    list: [1, 2,],
}""", "f.cml")
    assert doc.value == {"unquoted": "single", "double": "a\nb", "hex": 31, "neg": -0.5,
                         "inf": math.inf, "list": [1, 2]}


def test_positions_of_keys_and_elements():
    doc = parse('{\n  use: [\n    { protocol: "a" },\n  ],\n}', "f.cml")
    assert doc.positions[("use",)] == (2, 3)
    assert doc.positions[("use", 0)] == (3, 5)
    assert doc.positions[("use", 0, "protocol")] == (3, 7)


@pytest.mark.parametrize("text,where,message", [
    ('{\n  a: 1\n  b: 2,\n}', "f.cml:3:3", "expected ',' or '}'"),
    ('{\n  a: [1,\n    2 3],\n}', "f.cml:3:7", "expected ',' or ']'"),
    ('{ a: "open }', "f.cml:1:6", "unterminated string"),
    ('{ a: 1, a: 2 }', "f.cml:1:9", "duplicate key 'a'"),
    ('{ a }', "f.cml:1:5", "expected ':'"),
    ('{ a: 1 } x', "f.cml:1:10", "after the end of the document"),
    ('{ a: /* never closed', "f.cml:1:6", "unterminated comment"),
    ('', "f.cml:1:1", "unexpected end of file"),
])
def test_syntax_error_has_line_and_column(text, where, message):
    with pytest.raises(ManifestError) as info:
        parse(text, "f.cml")
    (problem,) = info.value.problems
    assert str(problem) == f"{where}: {message}" or (str(problem).startswith(where) and message in str(problem))
    assert problem.column > 0
