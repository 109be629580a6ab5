"""Validate a merged ``.cml`` document: shape (pydantic) first, then cross-checks.

Every problem is collected before answering, each as ``file:line: key.path: message``:

    realm.cml:12: offer[1].to: '#countr' is not a child or collection
    realm.cml:14: offer[2].from: 'data' is not a storage capability declared here

Shape is checked one section entry at a time, so one malformed entry does not hide the
problems of the others; cross-checks then run on every entry that has a valid shape (the
names of malformed children still count, so an offer to them is not reported twice).

Limit, as in Fuchsia's cmc: a child's own manifest is not available when its parent is
compiled, so "offer from #child of something the child does not expose" cannot be checked
here. The route walk (routing/) reports it at run time, naming the hop.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from .decl import RUNNERS
from ..errors import ManifestError, Problem
from ..moniker import NAME_PATTERN
from . import schema
from .merge import SourceMap
from .schema import KINDS, TOP_LEVEL_KEYS, UNSUPPORTED_KEYS

__all__ = ["Checked", "check_value", "validate"]

_NAME = re.compile(NAME_PATTERN)
_CAPABILITY_NAME = re.compile(r"[-_.A-Za-z0-9]{1,255}")
_CONFIG_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ENTRY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_LOCAL_ENTRY = re.compile(r"unix:/\S+#[-_.a-z0-9]{1,100}")
_INT_RANGES = {f"{s}int{b}": ((0, 2**b - 1) if s else (-(2 ** (b - 1)), 2 ** (b - 1) - 1))
               for s in ("u", "") for b in (8, 16, 32, 64)}
CONFIG_TYPES = ("bool", *_INT_RANGES, "string", "vector")
_RUNNER_KEY = {"python": "module", "process": "binary", "inproc": "entry", "local": "entry", "ray": "module"}
_RAY_NODE = re.compile(r"[-_.A-Za-z0-9]{1,63}")  # a cm-node label value (docs/scale-out.md)
_RAY_RESOURCE = re.compile(r"[A-Za-z_][-_.:/A-Za-z0-9]{0,99}")
_ANY_TEXT = {("config", "default"), ("capabilities", "value"), ("children", "config")}
_SECTIONS = {"capabilities": schema.Capability, "use": schema.Use, "offer": schema.Offer,
             "expose": schema.Expose, "children": schema.Child, "collections": schema.Collection}


@dataclass
class Checked:
    """The valid entries of a manifest, each with its index in the merged document."""

    program: schema.Program | None = None
    sections: dict[str, list[tuple[int, BaseModel]]] = field(default_factory=dict)
    config: list[tuple[str, schema.ConfigField]] = field(default_factory=list)
    child_names: set[str] = field(default_factory=set)
    collection_names: set[str] = field(default_factory=set)

    def entries(self, section: str) -> list[tuple[int, BaseModel]]:
        return self.sections.get(section, [])


def validate(value: object, smap: SourceMap) -> Checked:
    """Check a merged document; return its valid parts, or raise ManifestError with every
    problem found (shape and cross-checks alike)."""
    problems: list[Problem] = list(smap.pending)
    checked = _shape(value, smap, problems)
    _Cross(checked, smap, problems).run()
    if problems:
        raise ManifestError(problems)
    return checked


# -- shape -------------------------------------------------------------------------------


def _shape(value: object, smap: SourceMap, problems: list[Problem]) -> Checked:
    checked = Checked()
    if not isinstance(value, dict):
        problems.append(smap.problem((), "a manifest is an object ({ ... })"))
        return checked
    _nul_bytes(value, (), smap, problems)
    for key in value:
        if key not in TOP_LEVEL_KEYS:
            problems.append(smap.problem((key,), _unknown(key, TOP_LEVEL_KEYS)))
    if "program" in value:
        checked.program = _model(schema.Program, value["program"], ("program",), smap, problems)
    for section, model in _SECTIONS.items():
        checked.sections[section] = _section(value, section, model, smap, problems)
    checked.child_names = _raw_names(value.get("children"))
    checked.collection_names = _raw_names(value.get("collections"))
    config = value.get("config", {})
    if not isinstance(config, dict):
        problems.append(smap.problem(("config",), "expected an object of config fields"))
        return checked
    for key, raw in config.items():
        parsed = _model(schema.ConfigField, raw, ("config", key), smap, problems)
        if parsed is not None:
            checked.config.append((key, parsed))
    return checked


def _nul_bytes(value, path: tuple, smap: SourceMap, problems: list[Problem]) -> None:
    """A NUL byte cannot be in a name, URL, path or argument: the OS would refuse it at open
    or exec. Config values may hold any text. (Depth is bounded by the parser.)"""
    if len(path) == 3 and (path[0], path[2]) in _ANY_TEXT:
        return
    if isinstance(value, str) and "\0" in value:
        problems.append(smap.problem(path, "a NUL byte is not allowed here"))
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\0" in key:
                problems.append(smap.problem(path, "a NUL byte is not allowed in a key"))
            _nul_bytes(item, (*path, key), smap, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _nul_bytes(item, (*path, index), smap, problems)


def _section(value: dict, section: str, model, smap, problems) -> list[tuple[int, BaseModel]]:
    raw = value.get(section, [])
    if not isinstance(raw, list):
        problems.append(smap.problem((section,), "expected a list"))
        return []
    parsed = ((i, _model(model, item, (section, i), smap, problems)) for i, item in enumerate(raw))
    return [(i, m) for i, m in parsed if m is not None]


def _raw_names(raw) -> set[str]:
    if not isinstance(raw, list):
        return set()
    return {item["name"] for item in raw if isinstance(item, dict) and isinstance(item.get("name"), str)}


def _model(model, raw, prefix: tuple, smap: SourceMap, problems: list[Problem]):
    """Validate ``raw`` with ``model``; on failure add one Problem per pydantic error."""
    if not isinstance(raw, dict):
        problems.append(smap.problem(prefix, f"expected an object, got {_kind_of(raw)}"))
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        for error in e.errors():
            loc = tuple(part for part in error["loc"] if part != "[key]")
            problems.append(smap.problem(prefix + loc, _message(error, loc, model)))
        return None


def _message(error: dict, loc: tuple, model=None) -> str:
    """Turn one pydantic error into a sentence a manifest author can act on."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown(loc[-1], _keys_at(model, loc[:-1]))
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {error['input']!r}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    got = error.get("input")
    suffix = f", got {_kind_of(got)}" if not isinstance(got, (dict, list)) or kind.endswith("_type") else ""
    return error["msg"][0].lower() + error["msg"][1:] + suffix


def _unknown(key, known=()) -> str:
    if key in UNSUPPORTED_KEYS:
        return f"'{key}' is not supported by this component manager"
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")


def _keys_at(model, loc: tuple) -> list[str]:
    """The keys the pydantic ``model`` accepts at ``loc`` (list indexes skipped); [] if unknown."""
    for part in loc:
        if model is None:
            return []
        if isinstance(part, str):
            fields = model.model_fields
            field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
            model = _model_in(field.annotation) if field is not None else None
    return [f.alias or name for name, f in model.model_fields.items()] if model is not None else []


def _model_in(annotation):
    """The pydantic model inside a field's type (``X``, ``X | None``, ``list[X]``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in typing.get_args(annotation) if (m := _model_in(arg)) is not None), None)


def _kind_of(value) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object", type(None): "null"}
    shown = f" {value!r}" if isinstance(value, (bool, int, float, str)) else ""
    return names.get(type(value), type(value).__name__) + shown


# -- config values -----------------------------------------------------------------------


def check_value(value, type_: str, max_size: int = 0, element: str = "", max_count: int = 0,
                element_max_size: int = 0) -> str | None:
    """Return why ``value`` is not a valid config value of this type, or None if it is.

    Example: ``check_value("hello", "string", max_size=3)`` ->
    ``"'hello' is longer than max_size 3"``.
    """
    if type_ == "vector":
        if not isinstance(value, list):
            return f"expected a list, got {_kind_of(value)}"
        if max_count and len(value) > max_count:
            return f"has {len(value)} elements, more than max_count {max_count}"
        for item in value:
            why = check_value(item, element, element_max_size)
            if why:
                return f"element {why}"
        return None
    if type_ == "bool":
        return None if isinstance(value, bool) else f"expected a boolean, got {_kind_of(value)}"
    if type_ == "string":
        if not isinstance(value, str):
            return f"expected a string, got {_kind_of(value)}"
        return f"{value!r} is longer than max_size {max_size}" if max_size and len(value.encode()) > max_size else None
    low, high = _INT_RANGES[type_]
    if not isinstance(value, int) or isinstance(value, bool):
        return f"expected an integer, got {_kind_of(value)}"
    return None if low <= value <= high else f"{value} is out of range for {type_} ({low}..{high})"


# -- cross-checks ------------------------------------------------------------------------


class _Cross:
    """The checks that need more than one entry at a time."""

    def __init__(self, checked: Checked, smap: SourceMap, problems: list[Problem]):
        self.c = checked
        self.smap = smap
        self.problems = problems
        self.declared: set[tuple[str, str]] = set()  # (kind, name) of capabilities

    def add(self, path: tuple, message: str) -> None:
        self.problems.append(self.smap.problem(path, message))

    def run(self) -> None:
        self.names()
        self.program()
        self.config()
        self.capabilities()
        self.uses()
        self.offers()
        self.exposes()
        self.cycles()

    # names of children and collections

    def names(self) -> None:
        seen: dict[str, str] = {}
        for section, what in (("children", "child"), ("collections", "collection")):
            for i, entry in self.c.entries(section):
                if not _NAME.fullmatch(entry.name):
                    self.add((section, i, "name"), f"invalid {what} name {entry.name!r}: must match {NAME_PATTERN}")
                elif entry.name in seen:
                    self.add((section, i, "name"), f"duplicate name {entry.name!r} (already a {seen[entry.name]})")
                seen.setdefault(entry.name, what)

    # program

    def program(self) -> None:
        p = self.c.program
        if p is None:
            return
        if p.runner not in RUNNERS:
            self.add(("program", "runner"), f"unknown runner {p.runner!r} (this manager has {', '.join(RUNNERS)})")
            return
        needed = _RUNNER_KEY[p.runner]
        if not getattr(p, needed):
            self.add(("program", needed), f"missing required key '{needed}' for the {p.runner} runner")
        for key in dict.fromkeys(_RUNNER_KEY.values()):
            if key != needed and getattr(p, key) is not None:
                owners = " or ".join(r for r, k in _RUNNER_KEY.items() if k == key)
                self.add(("program", key), f"'{key}' is for the {owners} runner, not {p.runner}")
        if p.runner == "inproc" and p.entry and not _ENTRY.fullmatch(p.entry):
            self.add(("program", "entry"), f"invalid entry {p.entry!r}: expected \"package.module:function\"")
        if p.runner == "local" and p.entry and not _LOCAL_ENTRY.fullmatch(p.entry):
            self.add(("program", "entry"), f"invalid entry {p.entry!r}: expected \"unix:/path/to/socket#name\"")
        self.limits(p)
        self.placement(p)
        if p.health is not None:
            self.health(p.health)

    def placement(self, p) -> None:
        """``node`` and ``resources`` place a program on a Ray node: the ray runner's only."""
        for key in ("node", "resources"):
            if getattr(p, key) is not None and p.runner != "ray":
                self.add(("program", key), f"'{key}' is for the ray runner, not {p.runner}")
        if p.runner != "ray":
            return
        if p.node is not None and not _RAY_NODE.fullmatch(p.node):
            self.add(("program", "node"), f"invalid node {p.node!r}: a cm-node label, 1-63 of [-_.A-Za-z0-9]")
        for name, amount in (p.resources or {}).items():
            if not _RAY_RESOURCE.fullmatch(name):
                self.add(("program", "resources", name), f"invalid Ray resource name {name!r}")
            elif not 0 <= amount <= 1e6 or amount != amount:
                self.add(("program", "resources", name), f"resource {name!r}: {amount} is not within 0..1000000")

    def limits(self, p) -> None:
        """Limits are kernel limits on a process: the in-process runners cannot have them."""
        limited = p.memory_limit is not None or (p.limits is not None and p.limits.model_fields_set)
        if limited and p.runner == "ray":
            key = "limits" if p.limits is not None else "memory_limit"
            self.add(("program", key), "the ray runner cannot enforce limits on a Ray node; "
                     "use resources (Ray's own accounting) or the python runner")
        elif limited and p.runner in ("inproc", "local"):
            key = "limits" if p.limits is not None else "memory_limit"
            self.add(("program", key), f"the {p.runner} runner runs inside another process; "
                     "limits need the python or process runner")
        if p.memory_limit is not None and p.limits is not None and p.limits.memory is not None:
            self.add(("program", "memory_limit"), "set limits.memory or memory_limit, not both "
                     "(memory_limit is the older spelling)")

    def health(self, h) -> None:
        if h.grpc == bool(h.exec):
            self.add(("program", "health"), "give exactly one probe: 'grpc: true' or 'exec: [command]'")
        elif h.grpc and not any(e.protocol for _, e in self.c.entries("capabilities")):
            self.add(("program", "health", "grpc"),
                     "a grpc probe needs a protocol capability (it calls grpc.health.v1 where the program serves)")

    # config schema

    def config(self) -> None:
        for key, f in self.c.config:
            path = ("config", key)
            if not _CONFIG_KEY.fullmatch(key):
                self.add(path, f"invalid config key {key!r}: must match [a-z][a-z0-9_]{{0,63}}")
            self.config_type(path, f)
            if f.default is not None and f.type in CONFIG_TYPES and self.problems_ok(path, f):
                why = check_value(f.default, f.type, f.max_size or 0, f.element.type if f.element else "",
                                  f.max_count or 0, (f.element.max_size or 0) if f.element else 0)
                if why:
                    self.add((*path, "default"), why)

    def problems_ok(self, path: tuple, f) -> bool:
        """True if the field's type description is complete enough to check a value."""
        return f.type != "vector" or (f.element is not None and f.element.type in CONFIG_TYPES)

    def config_type(self, path: tuple, f) -> None:
        """``type`` known; strings have max_size; vectors have element and max_count."""
        if f.type not in CONFIG_TYPES:
            self.add((*path, "type"), f"unknown config type {f.type!r} (expected one of {', '.join(CONFIG_TYPES)})")
            return
        if f.type == "string" and not f.max_size:
            self.add((*path, "max_size"), "missing required key 'max_size' for a string")
        if f.type != "string" and f.max_size:
            self.add((*path, "max_size"), "'max_size' is only for strings")
        if f.type != "vector":
            for key in ("element", "max_count"):
                if getattr(f, key) is not None:
                    self.add((*path, key), f"'{key}' is only for vectors")
            return
        if f.max_count is None:
            self.add((*path, "max_count"), "missing required key 'max_count' for a vector")
        if f.element is None:
            self.add((*path, "element"), "missing required key 'element' for a vector")
        elif f.element.type not in CONFIG_TYPES or f.element.type == "vector":
            self.add((*path, "element", "type"), f"invalid element type {f.element.type!r}")
        elif f.element.type == "string" and not f.element.max_size:
            self.add((*path, "element", "max_size"), "missing required key 'max_size' for a string")

    # the four kinds of entries

    def kind(self, section: str, i: int, entry) -> tuple[str, list[str]] | None:
        """The entry's (kind, names), after checking it names exactly one kind, validly."""
        present = [k for k in KINDS if getattr(entry, k) is not None]
        if len(present) != 1:
            which = "one" if not present else "only one"
            self.add((section, i), f"an entry needs {which} of {', '.join(KINDS)}"
                     + (f" (has {', '.join(present)})" if present else ""))
            return None
        kind = present[0]
        names = getattr(entry, kind)
        ok = bool(names)
        if not names:
            self.add((section, i, kind), "expected at least one name")
        for name in names:
            if not _CAPABILITY_NAME.fullmatch(name):
                self.add((section, i, kind), f"invalid capability name {name!r}: must match [-_.A-Za-z0-9]{{1,255}}")
                ok = False
        as_ = getattr(entry, "as_", None)
        if as_ is not None and len(names) > 1:
            self.add((section, i, "as"), "'as' cannot be used with a list of names")
            ok = False
        elif as_ is not None and not _CAPABILITY_NAME.fullmatch(as_):
            self.add((section, i, "as"), f"invalid capability name {as_!r}: must match [-_.A-Za-z0-9]{{1,255}}")
        return (kind, names) if ok else None

    def capabilities(self) -> None:
        for i, cap in self.c.entries("capabilities"):
            got = self.kind("capabilities", i, cap)
            if got is None:
                continue
            kind, names = got
            for name in names:
                if any(name == n for _, n in self.declared):
                    self.add(("capabilities", i, kind), f"duplicate capability name {name!r}")
                self.declared.add((kind, name))
            self.capability_keys(i, kind, cap)

    def capability_keys(self, i: int, kind: str, cap) -> None:
        """path only for directories; type/value (and sizes) only for config."""
        path = ("capabilities", i)
        if kind == "directory" and not cap.path:
            self.add((*path, "path"), "missing required key 'path' for a directory")
        if kind != "directory" and cap.path is not None:
            self.add((*path, "path"), f"'path' is not allowed on a {kind} capability")
        config_keys = ("type", "value", "max_size", "max_count", "element")
        if kind != "config":
            for key in config_keys:
                if getattr(cap, key) is not None:
                    self.add((*path, key), f"'{key}' is only for config capabilities")
            return
        for key in ("type", "value"):
            if getattr(cap, key) is None:
                self.add((*path, key), f"missing required key '{key}' for a config capability")
        if cap.type is not None and cap.type not in CONFIG_TYPES:
            self.add((*path, "type"), f"unknown config type {cap.type!r}")
        elif cap.type is not None and cap.value is not None and (cap.type != "vector" or cap.element):
            why = check_value(cap.value, cap.type, cap.max_size or 0, cap.element.type if cap.element else "",
                              cap.max_count or 0, (cap.element.max_size or 0) if cap.element else 0)
            if why:
                self.add((*path, "value"), why)

    def source(self, section: str, i: int, text: str, allowed: tuple[str, ...]) -> str | None:
        """Check a ``from``: one of ``allowed`` words, or ``#name`` of a child. Returns the
        child name for ``#name``, the word otherwise, None if invalid."""
        path = (section, i, "from")
        if text.startswith("#"):
            name = text[1:]
            if name in self.c.child_names:
                return text
            what = "a collection (not a valid source here)" if name in self.c.collection_names else "not a child"
            self.add(path, f"{text!r} is {what}")
            return None
        if text not in allowed:
            self.add(path, f"invalid source {text!r} (expected {', '.join(repr(a) for a in allowed)} or '#child')")
            return None
        return text

    def declared_here(self, section: str, i: int, kind: str, names: list[str]) -> None:
        for name in names:
            if (kind, name) not in self.declared:
                self.add((section, i, kind), f"{name!r} is not a {kind} capability declared here (from: \"self\")")

    def uses(self) -> None:
        targets: dict[tuple[str, str], int] = {}
        paths: set[str] = set()
        config_keys = {key for key, _ in self.c.config}
        for i, use in self.c.entries("use"):
            got = self.kind("use", i, use)
            source = self.source("use", i, use.from_, ("parent", "self", "framework"))
            if got is None:
                continue
            kind, names = got
            if source == "self":
                self.declared_here("use", i, kind, names)
            self.use_keys(i, kind, names, use, source, config_keys, paths)
            for name in names:
                target = (kind, use.as_ or name)
                if target in targets:
                    self.add(("use", i, kind), f"{kind} {target[1]!r} is already used (use[{targets[target]}])")
                targets.setdefault(target, i)

    def use_keys(self, i, kind, names, use, source, config_keys, paths) -> None:
        """path: needed for storage/directory, not for config; key: config only."""
        path = ("use", i)
        if kind in ("storage", "directory") and not use.path:
            self.add((*path, "path"), f"missing required key 'path' for a used {kind}")
        if kind == "config" and use.path is not None:
            self.add((*path, "path"), "'path' is not allowed on a used config")
        if use.path is not None and len(names) > 1:
            self.add((*path, "path"), "'path' cannot be used with a list of names")
        if use.path is not None and not use.path.startswith("/"):
            self.add((*path, "path"), f"path {use.path!r} must be absolute")
        elif use.path is not None and use.path in paths:
            self.add((*path, "path"), f"path {use.path!r} is already used")
        paths.add(use.path or "")
        if kind == "storage" and source not in (None, "parent"):
            self.add((*path, "from"), "storage is used from the parent only")
        if kind != "config" and use.key is not None:
            self.add((*path, "key"), "'key' is only for a used config")
        if kind == "config" and use.key is None:
            self.add(path, "missing required key 'key' for a used config")
        elif kind == "config" and use.key not in config_keys:
            self.add((*path, "key"), f"{use.key!r} is not a field of this component's config")

    def offers(self) -> None:
        seen: dict[tuple, int] = {}
        for i, offer in self.c.entries("offer"):
            got = self.kind("offer", i, offer)
            source = self.source("offer", i, offer.from_, ("parent", "self", "void"))
            if got is None:
                continue
            kind, names = got
            if source == "self":
                self.declared_here("offer", i, kind, names)
            if source == "void" and offer.availability != "optional":
                self.add(("offer", i, "availability"), 'an offer from "void" must be availability: "optional"')
            if kind == "storage" and source not in (None, "parent", "self"):
                self.add(("offer", i, "from"), "storage is offered from the parent or self only")
            for target in self.offer_targets(i, offer, source):
                for name in names:
                    key = (target, kind, offer.as_ or name)
                    if key in seen:
                        self.add(("offer", i, "to"), f"{kind} {key[2]!r} is already offered to {target!r} (offer[{seen[key]}])")
                    seen.setdefault(key, i)

    def offer_targets(self, i: int, offer, source: str | None) -> list[str]:
        """Check each ``to``; return the valid targets."""
        valid = []
        for target in offer.to:
            name = target[1:] if target.startswith("#") else None
            if target == "self" or target == "#self":
                self.add(("offer", i, "to"), "cannot offer to self (use it instead)")
            elif name is None:
                self.add(("offer", i, "to"), f"invalid target {target!r} (expected '#child' or '#collection')")
            elif name not in self.c.child_names and name not in self.c.collection_names:
                self.add(("offer", i, "to"), f"{target!r} is not a child or collection")
            elif source == target:
                self.add(("offer", i, "to"), f"cannot offer from {target!r} to itself")
            else:
                valid.append(target)
        return valid

    def exposes(self) -> None:
        seen: dict[tuple[str, str], int] = {}
        for i, expose in self.c.entries("expose"):
            got = self.kind("expose", i, expose)
            source = self.source("expose", i, expose.from_, ("self", "framework"))
            if got is None:
                continue
            kind, names = got
            if source == "self":
                self.declared_here("expose", i, kind, names)
            if kind == "storage":
                self.add(("expose", i, "storage"), "storage cannot be exposed (offer it instead)")
            for name in names:
                key = (kind, expose.as_ or name)
                if key in seen:
                    self.add(("expose", i, kind), f"{kind} {key[1]!r} is already exposed (expose[{seen[key]}])")
                seen.setdefault(key, i)

    # strong dependency cycles among siblings

    def cycles(self) -> None:
        """An offer from #a to #b makes b depend on a; a strong cycle cannot be started or
        shut down in order, so it is refused, naming the cycle."""
        edges: dict[str, dict[str, int]] = {}
        for i, offer in self.c.entries("offer"):
            if offer.dependency == "strong" and offer.from_.startswith("#"):
                for target in offer.to:
                    edges.setdefault(offer.from_[1:], {}).setdefault(target[1:], i)
        for cycle in _find_cycles(edges):
            first = edges[cycle[-2]][cycle[-1]]
            shown = " -> ".join(f"#{n}" for n in cycle)
            self.add(("offer", first), f"strong dependency cycle: {shown} "
                     '(mark one of these offers dependency: "weak")')


def _find_cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected group, as a closed path of names, e.g. [a, b, a]."""
    cycles, done = [], set()
    for start in sorted(edges):
        if start in done:
            continue
        stack, on_path = [(start, iter(sorted(edges.get(start, {}))))], [start]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                done.add(on_path.pop())
            elif nxt in on_path:
                cycles.append(on_path[on_path.index(nxt):] + [nxt])
                done.update(on_path)
                stack.clear()
            elif nxt not in done:
                stack.append((nxt, iter(sorted(edges.get(nxt, {})))))
                on_path.append(nxt)
    return cycles
