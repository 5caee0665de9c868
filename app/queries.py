"""Query strings read into values: the compact schedule form, band levels, metadata filters.
Errors name the query parameter (``query.schedule``) and say what is allowed."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from app.errors import InputError


def parse_metadata_filters(filters: Sequence[str]) -> dict[str, Any]:
    """``["model_size=25M", "layers=12"]`` -> ``{"model_size": "25M", "layers": 12}`` (values
    that parse as JSON are compared as JSON, others as strings)."""
    parsed = {}
    for item in filters:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"expected key=value, got {item!r}", "query.metadata")
        try:
            parsed[key] = json.loads(raw)
        except ValueError:
            parsed[key] = raw
    return parsed


def parse_level(text: str, where: str = "query.level") -> float | None:
    """A band level from a query string: a number in (0, 1), or ``none`` (no band)."""
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        level = float(text)
    except ValueError:
        level = math.nan
    if not 0 < level < 1:
        raise InputError(f"must be a number in (0, 1), or none for no band; got {text!r}", where)
    return level


# The compact query form of a schedule: ``type:key=value,key=value``; a list is ``[a,b]``.
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\[[^\]]*\]|[^,\[\]]*)\s*(?:,|$)")


def _compact_value(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith("["):
        inner = raw[1:-1].strip()
        return [_compact_value(item) for item in inner.split(",")] if inner else []
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    try:
        value = float(raw)
    except ValueError:
        return raw
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def parse_compact_schedule(text: str) -> dict[str, Any]:
    """``cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5`` (or a JSON
    object) -> a schedule spec. Integral numbers become ints, so ``24000.0`` and ``24000`` are
    the same query."""
    text = text.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as error:
            raise InputError(f"not valid JSON: {error}", "query.schedule") from error
        if not isinstance(spec, dict):
            raise InputError("a JSON schedule must be an object", "query.schedule")
        return spec
    kind, sep, rest = text.partition(":")
    if not sep or not kind.strip():
        raise InputError(
            "expected type:key=value,... e.g. "
            "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5",
            "query.schedule",
        )
    spec: dict[str, Any] = {"type": kind.strip()}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _TOKEN.match(rest, position)
        if not match or match.end() == position:
            raise InputError(f"cannot read {rest[position:]!r} as key=value", "query.schedule")
        key, raw = match.group(1), match.group(2)
        if key in spec:
            raise InputError(f"{key!r} given twice", "query.schedule")
        spec[key] = _compact_value(raw)
        position = match.end()
    return spec
