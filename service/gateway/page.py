"""The web page at ``/`` and the API docs at ``/docs`` and ``/redoc``, all from local files.

Nothing here loads from the internet: the page is plain HTML, CSS and JavaScript in
``static/page/`` (no build step), and Swagger UI and ReDoc come from the ``fastapi-offline``
package's copies, with their licences from ``static/licenses/``. Every asset is served from a
fixed table of names built at start-up, so no request path ever reaches the file system. A
Content-Security-Policy on each page lets the browser fetch from this server only.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from service.gateway.errors import ApiError

STATIC = Path(__file__).resolve().parent / "static"
PAGE_DIR = STATIC / "page"
LICENSE_DIR = STATIC / "licenses"
PAGE_PREFIX = "/static/page"
DOCS_PREFIX = "/static/docs"

# The page loads only its own files and talks only to this server (WebSockets included: CSP3's
# 'self' matches ws: and wss: on the same host); the camera preview and the chosen clip are
# blob: URLs.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# Swagger UI and ReDoc: FastAPI starts them with an inline script and they inject styles, but
# whatever they fetch comes from this server.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "frame-ancestors 'none'"
)
# ReDoc's sidebar shows a logo from Redocly's CDN and offers no option to hide it; pointing it at
# an empty data: URL makes the image fail, which ReDoc answers by leaving it out.
REDOC_LOGO = (b'"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'"data:,"')

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    """A file served under a fixed name."""

    path: Path
    media_type: str
    cache_control: str
    body: bytes | None = None  # served instead of the file when set


def _asset(path: Path, cache_control: str) -> Asset:
    return Asset(path, _MEDIA_TYPES.get(path.suffix, "application/octet-stream"), cache_control)


def page_assets() -> dict[str, Asset]:
    """The page's files by name (``index.html`` is served at ``/``)."""
    # The page changes with the server: browsers revalidate it on every load.
    return {p.name: _asset(p, "no-cache") for p in sorted(PAGE_DIR.iterdir()) if p.is_file()}


def docs_assets() -> dict[str, Asset]:
    """Swagger UI's and ReDoc's files by name, with the licence files their banners name."""
    shipped = Path(str(importlib.resources.files("fastapi_offline").joinpath("static")))
    # They change only with the package's version.
    cache = "public, max-age=86400"
    assets = {
        name: _asset(shipped / name, cache)
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
    }
    assets["swagger-ui-bundle.js.LICENSE.txt"] = _asset(
        LICENSE_DIR / "swagger-ui.LICENSE.txt", cache
    )
    assets["swagger-ui.css.LICENSE.txt"] = assets["swagger-ui-bundle.js.LICENSE.txt"]
    assets["redoc.standalone.js.LICENSE.txt"] = _asset(LICENSE_DIR / "redoc.LICENSE.txt", cache)
    missing = [str(a.path) for a in assets.values() if not a.path.is_file()]
    if missing:
        raise RuntimeError(f"API docs assets missing (reinstall fastapi-offline): {missing}")
    redoc = assets["redoc.standalone.js"]
    body = redoc.path.read_bytes().replace(*REDOC_LOGO)
    assets["redoc.standalone.js"] = Asset(redoc.path, redoc.media_type, redoc.cache_control, body)
    return assets


def _serve(assets: dict[str, Asset], name: str, headers: dict[str, str] | None = None) -> Response:
    asset = assets.get(name)
    if asset is None:
        raise ApiError(404, "not_found", f"no asset {name!r}")
    headers = {"Cache-Control": asset.cache_control, **(headers or {})}
    if asset.body is not None:
        return Response(asset.body, media_type=asset.media_type, headers=headers)
    return FileResponse(asset.path, media_type=asset.media_type, headers=headers)


def _root(request: Request) -> str:
    """The path the app is mounted under (behind a proxy that strips a prefix), without '/'."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    """``/``, ``/docs``, ``/redoc`` and the files they load; none is in the OpenAPI document.

    Args:
        title: The API's title, shown in the docs pages' titles.
        openapi_url: Where the app serves its OpenAPI document.
    """
    api = APIRouter(include_in_schema=False)
    page = page_assets()
    docs = docs_assets()
    if "index.html" not in page:
        raise RuntimeError(f"the web page is missing: no index.html in {PAGE_DIR}")

    @api.api_route("/", methods=["GET", "HEAD"])
    async def index() -> Response:
        """The web page."""
        return _serve(page, "index.html", {"Content-Security-Policy": PAGE_CSP})

    @api.api_route(PAGE_PREFIX + "/{name}", methods=["GET", "HEAD"])
    async def page_file(name: str) -> Response:
        """One of the page's files."""
        return _serve(page, name)

    @api.api_route(DOCS_PREFIX + "/{name}", methods=["GET", "HEAD"])
    async def docs_file(name: str) -> Response:
        """One of Swagger UI's or ReDoc's files."""
        return _serve(docs, name)

    @api.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        """Swagger UI."""
        root = _root(request)
        html = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_PREFIX}/favicon.png",
            # No badge image from the public validator: the docs make no outside request.
            swagger_ui_parameters={"validatorUrl": None},
        )
        html.headers["Content-Security-Policy"] = DOCS_CSP
        return html

    @api.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc."""
        root = _root(request)
        html = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
        html.headers["Content-Security-Policy"] = DOCS_CSP
        return html

    return api
