"""The application services, one module per resource: what each endpoint does between HTTP
and ``fitting/``. A router translates HTTP into one call here; the CLI calls the same functions
in-process, so the two answer alike.

- :mod:`app.services.runs`: a run's learning rate, validation, appends, a run's JSON.
- :mod:`app.services.fits`: which runs a fit sees, the fit (:mod:`app.policy`), a fit's JSON.
- :mod:`app.services.predictions`: predicted curves with bands, forecasts of runs.

Plans are :mod:`app.routers.plans` over :mod:`fitting.plan` (nothing is stored), query parsing
:mod:`app.queries`, ETags :mod:`app.http_cache`, the JIT warm-up :mod:`app.warmup`.
"""

from __future__ import annotations

from typing import Any


def page(items: list, total: int, limit: int, offset: int) -> dict[str, Any]:
    """One page of a listing, with where the next one starts (None after the last)."""
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }
