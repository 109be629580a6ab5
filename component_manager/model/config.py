"""An instance's config values: schema defaults, overridden by the parent (the child
declaration's ``config``), overridden by routed config capabilities; each checked against
the schema. A value that is missing or of the wrong type fails the start with ConfigError.
"""

from __future__ import annotations

from ..errors import ConfigError, RouteError
from ..routing.route import TopologyView, route_use

__all__ = ["config_values", "check_value"]

_INT_RANGES = {
    f"{sign}int{bits}": ((0, 2**bits - 1) if sign == "u" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    for sign in ("", "u") for bits in (8, 16, 32, 64)
}


def check_value(type_: str, value, max_size: int = 0, element_type: str = "", max_count: int = 0) -> str:
    """Return "" if ``value`` fits the type, else what is wrong with it."""
    if type_ == "bool":
        return "" if isinstance(value, bool) else f"expected a bool, got {value!r}"
    if type_ in _INT_RANGES:
        low, high = _INT_RANGES[type_]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"expected {type_}, got {value!r}"
        return ""
    if type_ == "string":
        if not isinstance(value, str):
            return f"expected a string, got {value!r}"
        return f"longer than max_size {max_size}" if max_size and len(value) > max_size else ""
    if type_ == "vector":
        if not isinstance(value, list):
            return f"expected a list, got {value!r}"
        if max_count and len(value) > max_count:
            return f"more than max_count {max_count} elements"
        return next((f"element {i}: {why}" for i, v in enumerate(value)
                     if (why := check_value(element_type, v, max_size))), "")
    return f"unknown type {type_!r}"


def config_values(view: TopologyView, inst) -> dict[str, tuple[object, str]]:
    """key -> (value, source) with source one of default, parent, capability; config
    capabilities are routed through ``view``."""
    decl = inst.decl
    values: dict[str, tuple[object, str]] = {
        f.key: (f.default, "default") for f in decl.config if f.default is not None
    }
    child_decl = inst.parent.decl.child(inst.moniker.leaf.name) if inst.parent and not inst.is_dynamic else None
    for key, value in child_decl.config_overrides if child_decl else ():
        values[key] = (value, "parent")
    for use in decl.uses:
        if use.kind != "config":
            continue
        try:
            result = route_use(view, inst.moniker, use)
        except RouteError as e:
            raise ConfigError(str(inst.moniker), use.key or use.target_name, str(e)) from None
        if result.capability is not None:
            values[use.key or use.target_name] = (result.capability.value, "capability")
    for field in decl.config:
        if field.key not in values:
            raise ConfigError(str(inst.moniker), field.key, "no value (no default, override or route)")
        why = check_value(field.type, values[field.key][0], field.max_size, field.element_type, field.max_count)
        if why:
            raise ConfigError(str(inst.moniker), field.key, why)
    return values
