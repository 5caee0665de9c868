"""The dashboard: one page at ``/`` (its views are deep-linked by the URL's hash, ``#/runs/...``)
and its scripts, styles and the vendored charting library under ``/static/`` (``app/dashboard/``).
The page reads the same JSON the API answers; nothing here computes, and nothing comes from a
CDN, so it works with no internet access."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

#: The dashboard's files: index.html, the ES modules, the style sheet, vendor/ (uPlot, MIT).
DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard" / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard() -> FileResponse:
    """The dashboard's page (a single page: the views are routed by the URL's hash)."""
    # no-cache: a browser revalidates the page (ETag) so that a new release is seen at once.
    return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})


def mount_static(app: FastAPI) -> None:
    """Serve ``/static/...`` from the package (revalidated with their ETags)."""
    app.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
