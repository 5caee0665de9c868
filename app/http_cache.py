"""HTTP caching of predicted curves: a strong ETag from what decides the curve, and
If-None-Match matching. A fit never changes, so neither do its curves; a run's forecast changes
with the run's version, its latest fit and the state of its refit."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def digest(*parts: bytes | str) -> str:
    """SHA-256 of the parts, each followed by a NUL (so ``("ab", "c")`` and ``("a", "bc")``
    differ)."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def curve_etag(
    fit_id: str, spec: Mapping[str, Any], num_points: int, version: str, level: float | None
) -> str:
    """A strong ETag: the fit (immutable) and the normalised query decide the curve."""
    query = canonical_json({"schedule": dict(spec), "num_points": num_points, "level": level})
    return '"' + digest(version, fit_id, query)[:32] + '"'


def forecast_etag(
    run_id: str,
    run_version: int,
    fit_id: str,
    refit: str,
    num_points: int,
    version: str,
    level: float | None,
) -> str:
    """A strong ETag of ``GET /v1/runs/{id}/forecast``: the run's version (+1 per append that
    added points), the fit used (immutable), the refit's state (the body's ``freshness``) and
    the query decide the body."""
    query = canonical_json({"num_points": num_points, "level": level, "refit": refit})
    return '"' + digest(version, run_id, str(run_version), fit_id, query)[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return etag in tags
