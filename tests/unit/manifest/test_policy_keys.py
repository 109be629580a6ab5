"""The governing-policy keys under ``program`` (restart, health, hooks, on, max_run_time) and
the restart override of children[]/collections[]: compiled with defaults filled in, kept
through the .cm encoding, and each mistake refused with one located error."""

import pytest

from component_manager.errors import ManifestError
from component_manager.manifest import codec, compile_text
from component_manager.manifest.decl import HealthDecl, HooksDecl, RestartDecl, TriggersDecl

PROGRAM = 'runner: "process", binary: "/bin/true",'

FULL = '''{
  program: { runner: "process", binary: "/bin/true",
    restart: { policy: "on_failure", initial_delay: "0s", max_delay: "2s", reset_after: "1m",
               max_restarts: 3, within: "10s", escalate: true },
    health: { grpc: true, period: "1s", timeout: "200ms", failures: 2, initial_delay: "0s" },
    hooks: { pre_start: [["bin/migrate", "--quick"]], post_stop: [["a"], ["b", "c"]], timeout: "3s" },
    on: { start: [["s"]], failure: [["notify", "--loud"]], exit: [["e"]] },
    max_run_time: "1h",
  },
  capabilities: [{ protocol: "x.Y" }],
  children: [{ name: "a", url: "a.cml", restart: { policy: "always" } }],
  collections: [{ name: "w", restart: { policy: "on_failure", max_restarts: 0 } }],
}'''


def test_every_key_compiles_and_survives_the_cm_encoding():
    decl = compile_text(FULL, "full.cml")
    p = decl.program
    assert p.restart == RestartDecl("on_failure", 0, 2000, 60_000, 3, 10_000, True)
    assert p.health == HealthDecl(True, (), 1000, 200, 2, 0)
    assert p.hooks == HooksDecl((("bin/migrate", "--quick"),), (("a",), ("b", "c")), 3000)
    assert p.on == TriggersDecl((("s",),), (("notify", "--loud"),), (("e",),))
    assert p.max_run_time_ms == 3_600_000
    assert decl.children[0].restart == RestartDecl(policy="always")
    assert decl.collections[0].restart == RestartDecl(policy="on_failure", max_restarts=0)
    assert codec.decode(codec.encode(decl)) == decl


def test_defaults_without_the_keys():
    decl = compile_text(f"{{ program: {{ {PROGRAM} }} }}", "plain.cml")
    assert decl.program.restart == RestartDecl() and decl.program.restart.policy == "never"
    assert decl.program.health is None and not decl.program.hooks.pre_start and not decl.program.on
    assert decl.program.max_run_time_ms == 0
    assert codec.decode(codec.encode(decl)) == decl


# (program keys, "LINE: key.path", message fragment): each written on line 3
CASES = [
    ('restart: { policy: "sometimes" }', "3: program.restart.policy", "expected 'never', 'on_failure' or 'always'"),
    ('restart: { initial_delay: "soon" }', "3: program.restart.initial_delay", "invalid duration 'soon'"),
    ('restart: { max_delay: 30 }', "3: program.restart.max_delay", "valid string"),
    ('restart: { reset_after: "1d" }', "3: program.restart.reset_after", "invalid duration"),
    ('restart: { max_restarts: -1 }', "3: program.restart.max_restarts", "greater than or equal to 0"),
    ('restart: { within: "x" }', "3: program.restart.within", "invalid duration"),
    ('restart: { escalate: "yes" }', "3: program.restart.escalate", "valid boolean"),
    ('restart: { retries: 3 }', "3: program.restart.retries", "unknown key 'retries'"),
    ('restart: "always"', "3: program.restart", "valid dictionary"),
    ('health: { exec: [] }', "3: program.health.exec", "at least 1 item"),
    ('health: { grpc: true, exec: ["x"] }', "3: program.health", "exactly one probe"),
    ('health: { period: "1s" }', "3: program.health", "exactly one probe"),
    ('health: { exec: ["x"], failures: 0 }', "3: program.health.failures", "greater than or equal to 1"),
    ('health: { exec: ["x"], timeout: "fast" }', "3: program.health.timeout", "invalid duration"),
    ('health: { exec: ["x"], initial_delay: 1 }', "3: program.health.initial_delay", "valid string"),
    ('health: { exec: ["x"], period: "1x" }', "3: program.health.period", "invalid duration"),
    ('health: { grpc: true }', "3: program.health.grpc", "needs a protocol capability"),
    ('health: { http: "/" }', "3: program.health.http", "unknown key 'http'"),
    ('hooks: { pre_start: [[]] }', "3: program.hooks.pre_start[0]", "at least 1 item"),
    ('hooks: { pre_start: ["bin/migrate"] }', "3: program.hooks.pre_start[0]", "valid list"),
    ('hooks: { post_stop: "x" }', "3: program.hooks.post_stop", "valid list"),
    ('hooks: { timeout: 5 }', "3: program.hooks.timeout", "valid string"),
    ('hooks: { post_start: [] }', "3: program.hooks.post_start", "unknown key 'post_start'"),
    ('on: { crash: [["x"]] }', "3: program.on.crash", "unknown key 'crash'"),
    ('on: { start: [[1]] }', "3: program.on.start[0][0]", "valid string"),
    ('max_run_time: "forever"', "3: program.max_run_time", "invalid duration 'forever'"),
]


@pytest.mark.parametrize("keys,where,fragment", CASES, ids=[c[1] + f"-{i}" for i, c in enumerate(CASES)])
def test_each_mistake_gives_one_located_error(keys, where, fragment):
    text = f"{{\n  program: {{ {PROGRAM}\n    {keys} }},\n}}"
    with pytest.raises(ManifestError) as e:
        compile_text(text, "m.cml")
    assert len(e.value.problems) == 1, str(e.value)
    assert f"m.cml:{where}: " in str(e.value) and fragment in str(e.value), str(e.value)


def test_a_bad_override_in_children_and_collections_is_located():
    text = '{\n  children: [\n    { name: "a", url: "a.cml", restart: { policy: 1 } },\n  ],\n' \
           '  collections: [\n    { name: "c", restart: { within: "x" } },\n  ],\n}'
    with pytest.raises(ManifestError) as e:
        compile_text(text, "m.cml")
    assert "m.cml:3: children[0].restart.policy: " in str(e.value)
    assert "m.cml:6: collections[0].restart.within: invalid duration" in str(e.value)
