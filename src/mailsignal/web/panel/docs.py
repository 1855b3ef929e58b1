"""The API explorer at /api/v1/docs: Swagger UI from the vendored copy under
/static/vendor (scripts/vendor_assets.py), started by a script file of ours, so the page
needs no CDN and no inline script (issue 12). Public, as the OpenAPI document is."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .base import ENV

router = APIRouter(include_in_schema=False)


@router.get("/api/v1/docs")
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI over /api/v1/openapi.json."""
    return HTMLResponse(ENV.get_template("api_docs.html").render())
