"""The dashboard's static files at / (outside /v1 and its OpenAPI document on purpose: they
hold no data; the page asks for a token and reads everything through /v1)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from api.errors import not_found
from api.report import PLOTLY_JS, WEB

# Scripts only from this server; plotly.js writes <style> elements, hence inline styles.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_FILES: dict[str, tuple[Path, str]] = {
    "app.js": (WEB / "app.js", "text/javascript"),
    "style.css": (WEB / "style.css", "text/css"),
    "plotly.min.js": (PLOTLY_JS, "text/javascript"),
}
router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> Response:
    return FileResponse(WEB / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/web/{name}")
def asset(name: str) -> Response:
    if name not in _FILES:
        raise not_found(f"no file {name}")
    path, media = _FILES[name]
    return FileResponse(path, media_type=media, headers=_HEADERS)
