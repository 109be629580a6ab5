"""Invalid manifests: each is refused with the exact file, line and key path of the problem."""

import pytest

from component_manager.errors import ManifestError
from component_manager.manifest import compile_text

P = '{ runner: "python", module: "m" }'  # a valid program, for cases that need one

# (cml text, "LINE: key.path" of the expected problem, a fragment of its message)
CASES = [
    ('{\n  facets: {},\n}', "2: facets", "'facets' is not supported"),
    ('{\n  environments: [],\n}', "2: environments", "not supported"),
    ('{\n  bogus: 1,\n}', "2: bogus", "unknown key 'bogus'"),
    ('{\n  program: { module: "m" },\n}', "2: program.runner", "missing required key 'runner'"),
    ('{\n  program: {\n    runner: "elf",\n    binary: "b" },\n}', "3: program.runner", "unknown runner 'elf'"),
    ('{\n  program: { runner: "python" },\n}', "2: program.module", "missing required key 'module'"),
    ('{\n  program: { runner: "process" },\n}', "2: program.binary", "missing required key 'binary'"),
    ('{\n  program: {\n    runner: "inproc",\n    entry: "nocolon" },\n}', "4: program.entry", "invalid entry"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    binary: "x" },\n}', "4: program.binary", "is for the process runner"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    idle_timeout: "5x" },\n}', "4: program.idle_timeout", "invalid duration '5x'"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    stop_timeout: 5 },\n}', "4: program.stop_timeout", "valid string"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    memory_limit: "lots" },\n}', "4: program.memory_limit", "invalid size"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    limits: { memory: "512K" } },\n}', "4: program.limits.memory", "below 1MiB"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    limits: { cpu: 0 } },\n}', "4: program.limits.cpu", "greater than 0"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    limits: { pids: 0 } },\n}', "4: program.limits.pids", "greater than or equal to 1"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    limits: { swap: 1 } },\n}', "4: program.limits.swap", "unknown key 'swap'"),
    ('{\n  program: {\n    runner: "inproc", entry: "a.b:c",\n    limits: { pids: 4 } },\n}', "4: program.limits", "limits need the python or process runner"),
    ('{\n  program: {\n    runner: "python", module: "m", memory_limit: "8MiB",\n    limits: { memory: "8MiB" } },\n}', "3: program.memory_limit", "not both"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    priority: 5000 },\n}', "4: program.priority", "less than or equal to 1000"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    node: "node1" },\n}', "4: program.node", "'node' is for the ray runner, not python"),
    ('{\n  program: {\n    runner: "process", binary: "b",\n    resources: { CPU: 1 } },\n}', "4: program.resources", "'resources' is for the ray runner"),
    ('{\n  program: {\n    runner: "ray", module: "m",\n    node: "no de" },\n}', "4: program.node", "invalid node 'no de'"),
    ('{\n  program: {\n    runner: "ray", module: "m",\n    resources: { CPU: -1 } },\n}', "4: program.resources.CPU", "not within 0..1000000"),
    ('{\n  program: {\n    runner: "ray", module: "m",\n    limits: { pids: 4 } },\n}', "4: program.limits", "cannot enforce limits on a Ray node"),
    ('{\n  program: { runner: "ray" },\n}', "2: program.module", "missing required key 'module' for the ray runner"),
    ('{\n  children: [\n    { name: "a", url: "x", priority: "high" },\n  ],\n}', "3: children[0].priority", "valid integer"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    ready: "soon" },\n}', "4: program.ready", "expected 'serving' or 'spawned'"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    lifecycle: { stop_event: "x" } },\n}', "4: program.lifecycle.stop_event", "'notify' or 'none'"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    env: { A: 1 } },\n}', "4: program.env.A", "valid string"),
    ('{\n  program: {\n    runner: "python", module: "m",\n    forward_stdout_to: "log" },\n}', "4: program.forward_stdout_to", "not supported"),
    ('{\n  children: [\n    { name: "Bad Name", url: "x.cml" },\n  ],\n}', "3: children[0].name", "invalid child name"),
    ('{\n  children: [\n    { name: "a", url: "x.cml" },\n    { name: "a", url: "y.cml" },\n  ],\n}', "4: children[1].name", "duplicate name 'a'"),
    ('{\n  children: [\n    { name: "a" },\n  ],\n}', "3: children[0].url", "missing required key 'url'"),
    ('{\n  children: [\n    { name: "a", url: "x", startup: "now" },\n  ],\n}', "3: children[0].startup", "'lazy' or 'eager'"),
    ('{\n  children: [\n    { name: "a", url: "x", on_terminate: "reboot" },\n  ],\n}', "3: children[0].on_terminate", "not supported"),
    ('{\n  collections: [\n    { name: "c", durability: "forever" },\n  ],\n}', "3: collections[0].durability", "'transient', 'persistent' or 'single_run'"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  collections: [\n    { name: "a" },\n  ],\n}', "4: collections[0].name", "duplicate name 'a'"),
    ('{\n  capabilities: [\n    { protocol: "a b" },\n  ],\n}', "3: capabilities[0].protocol", "invalid capability name 'a b'"),
    ('{\n  capabilities: [\n    { protocol: "p" },\n    { protocol: "p" },\n  ],\n}', "4: capabilities[1].protocol", "duplicate capability name 'p'"),
    ('{\n  capabilities: [\n    { directory: "d" },\n  ],\n}', "3: capabilities[0].path", "missing required key 'path'"),
    ('{\n  capabilities: [\n    { config: "c", type: "bool" },\n  ],\n}', "3: capabilities[0].value", "missing required key 'value'"),
    ('{\n  capabilities: [\n    { config: "c", type: "uint8", value: 300 },\n  ],\n}', "3: capabilities[0].value", "out of range for uint8"),
    ('{\n  capabilities: [\n    { service: "s" },\n  ],\n}', "3: capabilities[0].service", "'service' is not supported"),
    ('{\n  capabilities: [\n    { protocol: "p", directory: "d", path: "/x" },\n  ],\n}', "3: capabilities[0]", "only one of"),
    ('{\n  capabilities: [\n    { storage: "data", backing_dir: "x" },\n  ],\n}', "3: capabilities[0].backing_dir", "not supported"),
    ('{\n  use: [\n    { protocol: "p", from: "#nobody" },\n  ],\n}', "3: use[0].from", "'#nobody' is not a child"),
    ('{\n  use: [\n    { protocol: "p", from: "self" },\n  ],\n}', "3: use[0].protocol", "'p' is not a protocol capability declared here"),
    ('{\n  use: [\n    { protocol: "p" },\n    { protocol: "p" },\n  ],\n}', "4: use[1].protocol", "already used"),
    ('{\n  use: [\n    { storage: "data" },\n  ],\n}', "3: use[0].path", "missing required key 'path'"),
    ('{\n  use: [\n    { protocol: "p", availability: "maybe" },\n  ],\n}', "3: use[0].availability", "'required' or 'optional'"),
    ('{\n  use: [\n    { protocol: "p", rights: ["r"] },\n  ],\n}', "3: use[0].rights", "not supported"),
    ('{\n  use: [\n    { config: "c", key: "missing" },\n  ],\n}', "3: use[0].key", "not a field of this component's config"),
    ('{\n  use: [\n    { protocol: ["a", "b"], as: "c" },\n  ],\n}', "3: use[0].as", "cannot be used with a list"),
    ('{\n  use: [\n    { directory: "d", path: "relative" },\n  ],\n}', "3: use[0].path", "must be absolute"),
    ('{\n  use: [\n    { event_stream: "started" },\n  ],\n}', "3: use[0].event_stream", "not supported"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "parent", to: "#b" },\n  ],\n}', "4: offer[0].to", "'#b' is not a child or collection"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "#zz", to: "#a" },\n  ],\n}', "4: offer[0].from", "'#zz' is not a child"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "self", to: "#a" },\n  ],\n}', "4: offer[0].protocol", "not a protocol capability declared here"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "parent", to: "self" },\n  ],\n}', "4: offer[0].to", "cannot offer to self"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "#a", to: "#a" },\n  ],\n}', "4: offer[0].to", "to itself"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "parent", to: "#a" },\n    { protocol: "p", from: "parent", to: "#a" },\n  ],\n}', "5: offer[1].to", "already offered to '#a'"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "void", to: "#a" },\n  ],\n}', "4: offer[0].availability", 'from "void" must be availability: "optional"'),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", to: "#a" },\n  ],\n}', "4: offer[0].from", "missing required key 'from'"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  offer: [\n    { protocol: "p", from: "parent", to: "#a", dependency: "weak_for_migration" },\n  ],\n}', "4: offer[0].dependency", "'strong' or 'weak'"),
    ('{\n  children: [\n    { name: "a", url: "x" },\n    { name: "b", url: "y" },\n  ],\n  offer: [\n    { protocol: "p", from: "#a", to: "#b" },\n    { protocol: "q", from: "#b", to: "#a" },\n  ],\n}', "8: offer[1]", "strong dependency cycle: #a -> #b -> #a"),
    ('{\n  expose: [\n    { protocol: "p", from: "self" },\n  ],\n}', "3: expose[0].protocol", "not a protocol capability declared here"),
    ('{\n  expose: [\n    { protocol: "p", from: "#ghost" },\n  ],\n}', "3: expose[0].from", "'#ghost' is not a child"),
    ('{\n  children: [ { name: "a", url: "x" } ],\n  expose: [\n    { protocol: "p", from: "#a" },\n    { protocol: "q", from: "#a", as: "p" },\n  ],\n}', "5: expose[1].protocol", "already exposed"),
    ('{\n  config: {\n    n: { type: "uint8", default: 256 },\n  },\n}', "3: config.n.default", "out of range for uint8"),
    ('{\n  config: {\n    s: { type: "string", max_size: 3, default: "hello" },\n  },\n}', "3: config.s.default", "longer than max_size 3"),
    ('{\n  config: {\n    s: { type: "string" },\n  },\n}', "3: config.s.max_size", "missing required key 'max_size'"),
    ('{\n  config: {\n    f: { type: "float" },\n  },\n}', "3: config.f.type", "unknown config type 'float'"),
    ('{\n  config: {\n    b: { type: "bool", default: "yes" },\n  },\n}', "3: config.b.default", "expected a boolean"),
    ('{\n  config: {\n    v: { type: "vector", element: { type: "uint8" }, max_count: 2, default: [1, 2, 3] },\n  },\n}', "3: config.v.default", "more than max_count 2"),
    ('{\n  config: {\n    v: { type: "vector", max_count: 2 },\n  },\n}', "3: config.v.element", "missing required key 'element'"),
    ('{\n  config: {\n    Bad: { type: "bool" },\n  },\n}', "3: config.Bad", "invalid config key"),
    ('{\n  config: {\n    b: { type: "bool", mutability: ["child"] },\n  },\n}', "3: config.b.mutability[0]", "expected 'parent'"),
    ('{\n  use: { protocol: "p" },\n}', "2: use", "expected a list"),
    ('{\n  use: [\n    "p",\n  ],\n}', "3: use[0]", "expected an object"),
    ('{\n  use: [\n    { from: "parent" },\n  ],\n}', "3: use[0]", "needs one of protocol"),
]


def _problem_lines(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        compile_text(text, "t.cml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("text,where,fragment", CASES, ids=[f"{i}-{c[1]}" for i, c in enumerate(CASES)])
def test_invalid_manifest_points_at_file_line_and_key(text, where, fragment):
    lines = _problem_lines(text)
    expected_prefix = f"t.cml:{where}: "
    matching = [line for line in lines if line.startswith(expected_prefix) and fragment in line]
    assert matching, f"no problem starting {expected_prefix!r} containing {fragment!r} in {lines}"


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


def test_every_error_is_reported_at_once():
    text = """{
    program: { runner: "python" },
    children: [
        { name: "a", url: "x" },
        { name: "a", url: "y", startup: "sometimes" },
    ],
    use: [ { protocol: "p", from: "#nobody" } ],
    offer: [ { protocol: "p", from: "parent", to: "#b" } ],
    facets: {},
}"""
    lines = _problem_lines(text)
    assert lines == [
        "t.cml:2: program.module: missing required key 'module' for the python runner",
        "t.cml:5: children[1].startup: expected 'lazy' or 'eager', got 'sometimes'",
        "t.cml:7: use[0].from: '#nobody' is not a child",
        "t.cml:8: offer[0].to: '#b' is not a child or collection",
        "t.cml:9: facets: 'facets' is not supported by this component manager",
    ]


def test_a_valid_shape_elsewhere_still_counts_a_malformed_childs_name():
    # The child entry is malformed, but the offer to it must not be reported as unknown.
    text = '{ children: [ { name: "a", url: "x", startup: 3 } ], offer: [ { protocol: "p", from: "parent", to: "#a" } ] }'
    lines = _problem_lines(text)
    assert len(lines) == 1 and "children[0].startup" in lines[0]
