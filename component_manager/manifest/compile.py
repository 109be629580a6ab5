"""Compile a ``.cml`` into a ComponentDecl: parse, merge includes, validate, normalize.

Normalizing fills in every default, so readers never guess: durations become milliseconds,
``use: [{ protocol: "echo.Echo" }]`` gets ``source="parent"``, ``target_name="echo.Echo"``
and ``path="/svc/echo.Echo"``; an offer to two targets becomes two OfferDecls; config fields
are sorted by key. Example::

    decl = compile_file("components/echo/echo_server.cml")
    decl.program.idle_timeout_ms   # 3000
    decl.fingerprint               # sha256 hex of the canonical encoding (see codec)

Raises ManifestError listing every problem, each as ``file:line: key.path: message``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .decl import (CapabilityDecl, ChildDecl, CollectionDecl, ComponentDecl, ConfigFieldDecl,
                    ExposeDecl, HealthDecl, HooksDecl, OfferDecl, ProgramDecl, RestartDecl,
                    TriggersDecl, UseDecl)
from . import merge, schema
from .codec import fingerprint_of
from .validate import Checked, validate

__all__ = ["compile_file", "compile_text", "freeze"]


def compile_file(path: str | Path, include_paths=(), roots=None) -> ComponentDecl:
    """Compile the ``.cml`` at ``path``; includes are looked up next to it, then in
    ``include_paths``, and read only from under ``roots`` (real paths) if given. Raises
    ManifestError."""
    value, smap = merge.read(path, include_paths, roots)
    return _finish(value, smap)


def compile_text(text: str, filename: str = "<string>", include_paths=(), roots=None) -> ComponentDecl:
    """Compile ``.cml`` source text; ``filename`` names it in errors and anchors includes."""
    value, smap = merge.read_text(text, filename, include_paths, roots)
    return _finish(value, smap)


def _finish(value, smap) -> ComponentDecl:
    decl = normalize(validate(value, smap))
    return dataclasses.replace(decl, fingerprint=fingerprint_of(decl))


def normalize(c: Checked) -> ComponentDecl:
    """Build the runtime form from validated entries, every default filled in."""
    children = {entry.name for _, entry in c.entries("children")}
    capabilities = tuple(cap for _, entry in c.entries("capabilities") for cap in _capabilities(entry))
    return ComponentDecl(
        program=_program(c.program, capabilities) if c.program else None,
        capabilities=capabilities,
        uses=tuple(u for _, entry in c.entries("use") for u in _uses(entry)),
        offers=tuple(o for _, entry in c.entries("offer") for o in _offers(entry, children)),
        exposes=tuple(e for _, entry in c.entries("expose") for e in _exposes(entry)),
        children=tuple(_child(entry) for _, entry in c.entries("children")),
        collections=tuple(CollectionDecl(e.name, e.durability, e.priority, _restart(e.restart))
                          for _, e in c.entries("collections")),
        config=tuple(_config_field(key, f) for key, f in sorted(c.config, key=lambda kv: kv[0])),
    )


def freeze(value):
    """Config values are immutable in a decl: lists become tuples (recursively)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def _kind(entry) -> tuple[str, list[str]]:
    kind = next(k for k in schema.KINDS if getattr(entry, k) is not None)
    return kind, getattr(entry, kind)


def _source(text: str) -> tuple[str, str]:
    """``"#echo_server"`` -> ("child", "echo_server"); ``"parent"`` -> ("parent", "")."""
    return ("child", text[1:]) if text.startswith("#") else (text, "")


def _program(p: schema.Program, capabilities) -> ProgramDecl:
    serves = any(cap.kind == "protocol" for cap in capabilities)
    d = ProgramDecl(runner=p.runner)  # for the defaults
    return ProgramDecl(
        runner=p.runner, module=p.module or "", binary=p.binary or "", entry=p.entry or "",
        args=tuple(p.args), env=tuple(sorted(p.env.items())),
        stop_event=p.lifecycle.stop_event if p.lifecycle else "none",
        ready=p.ready or ("serving" if serves else "spawned"),
        start_timeout_ms=_ms(p.start_timeout, d.start_timeout_ms),
        stop_timeout_ms=_ms(p.stop_timeout, d.stop_timeout_ms),
        idle_timeout_ms=_ms(p.idle_timeout, d.idle_timeout_ms),
        memory_limit_bytes=_memory_limit(p),
        cpu_limit=float(p.limits.cpu or 0) if p.limits else 0.0,
        pids_limit=(p.limits.pids or 0) if p.limits else 0,
        open_files_limit=(p.limits.open_files or 0) if p.limits else 0,
        priority=p.priority,
        restart=_restart(p.restart) or d.restart,
        health=_health(p.health),
        hooks=_hooks(p.hooks) if p.hooks else d.hooks,
        on=_triggers(p.on) if p.on else d.on,
        max_run_time_ms=_ms(p.max_run_time, 0),
        node=p.node or "",
        resources=tuple(sorted((k, float(v)) for k, v in (p.resources or {}).items())),
    )


def _commands(commands: list[list[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(c) for c in commands)


def _restart(r: schema.Restart | None) -> RestartDecl | None:
    if r is None:
        return None
    d = RestartDecl()
    return RestartDecl(policy=r.policy, initial_delay_ms=_ms(r.initial_delay, d.initial_delay_ms),
                       max_delay_ms=_ms(r.max_delay, d.max_delay_ms),
                       reset_after_ms=_ms(r.reset_after, d.reset_after_ms),
                       max_restarts=r.max_restarts, within_ms=_ms(r.within, d.within_ms),
                       escalate=r.escalate)


def _health(h: schema.Health | None) -> HealthDecl | None:
    if h is None:
        return None
    d = HealthDecl()
    return HealthDecl(grpc=h.grpc, exec=tuple(h.exec or ()), period_ms=_ms(h.period, d.period_ms),
                      timeout_ms=_ms(h.timeout, d.timeout_ms), failures=h.failures,
                      initial_delay_ms=_ms(h.initial_delay, d.initial_delay_ms))


def _hooks(h: schema.Hooks) -> HooksDecl:
    return HooksDecl(pre_start=_commands(h.pre_start), post_stop=_commands(h.post_stop),
                     timeout_ms=_ms(h.timeout, HooksDecl().timeout_ms))


def _triggers(t: schema.Triggers) -> TriggersDecl:
    return TriggersDecl(start=_commands(t.start), failure=_commands(t.failure), exit=_commands(t.exit))


def _memory_limit(p: schema.Program) -> int:
    """``limits.memory``, or its older spelling ``memory_limit`` (validate refuses both)."""
    text = (p.limits.memory if p.limits else None) or p.memory_limit
    return schema.parse_size(text) if text else 0


def _ms(text: str | None, default: int) -> int:
    return schema.parse_duration(text) if text is not None else default


def _capabilities(entry: schema.Capability):
    kind, names = _kind(entry)
    for name in names:
        yield CapabilityDecl(kind=kind, name=name, path=entry.path or "", type=entry.type or "",
                             value=freeze(entry.value))


def _uses(entry: schema.Use):
    kind, names = _kind(entry)
    source, child = _source(entry.from_)
    for name in names:
        target = entry.as_ or name
        path = entry.path or (f"/svc/{target}" if kind == "protocol" else "")
        yield UseDecl(kind=kind, source_name=name, source=source, source_child=child,
                      target_name=target, path=path, key=entry.key or "",
                      availability=entry.availability, dependency=entry.dependency)


def _offers(entry: schema.Offer, children: set[str]):
    kind, names = _kind(entry)
    source, child = _source(entry.from_)
    for to in entry.to:
        target = "child" if to[1:] in children else "collection"
        for name in names:
            yield OfferDecl(kind=kind, source_name=name, source=source, source_child=child,
                            target=target, target_child=to[1:], target_name=entry.as_ or name,
                            availability=entry.availability, dependency=entry.dependency)


def _exposes(entry: schema.Expose):
    kind, names = _kind(entry)
    source, child = _source(entry.from_)
    for name in names:
        yield ExposeDecl(kind=kind, source_name=name, source=source, source_child=child,
                         target_name=entry.as_ or name, availability=entry.availability)


def _child(entry: schema.Child) -> ChildDecl:
    overrides = tuple((k, freeze(v)) for k, v in sorted(entry.config.items()))
    return ChildDecl(name=entry.name, url=entry.url, startup=entry.startup, config_overrides=overrides,
                     priority=entry.priority, restart=_restart(entry.restart))


def _config_field(key: str, f: schema.ConfigField) -> ConfigFieldDecl:
    element = f.element
    max_size = f.max_size or (element.max_size or 0 if element else 0)
    return ConfigFieldDecl(key=key, type=f.type, element_type=element.type if element else "",
                           max_size=max_size, max_count=f.max_count or 0,
                           default=freeze(f.default), mutability=tuple(f.mutability))
