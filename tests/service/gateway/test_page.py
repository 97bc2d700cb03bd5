"""The page at ``/`` and the API docs at ``/docs`` and ``/redoc``: same-origin assets, all served.

The browser test (``test_page_browser.py``) runs the page against a real server; these check what
the HTML asks for without a browser.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from gateway_support import TestClient

from service.gateway.page import DOCS_CSP, PAGE_CSP


class _References(HTMLParser):
    """Every URL an HTML document loads or links to (``src``, ``href``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            value = found.get(name)
            if value:
                self.urls.append(value)
        self._in_script_without_src = tag == "script" and "src" not in found

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script_without_src = False


def _references(html: str) -> _References:
    parser = _References()
    parser.feed(html)
    return parser


def _same_origin_paths(page_path: str, html: str) -> list[str]:
    """The paths of what ``html`` references, asserting none leaves the origin."""
    base = "http://testserver" + page_path
    paths = []
    for url in _references(html).urls:
        absolute = urlsplit(urljoin(base, url))
        assert (absolute.scheme, absolute.netloc) == ("http", "testserver"), url
        paths.append(absolute.path)
    return paths


def test_the_page_loads_only_its_own_files_and_they_are_served(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # The browser itself refuses anything from elsewhere.
    assert response.headers["content-security-policy"] == PAGE_CSP
    html = response.text
    parsed = _references(html)
    assert parsed.inline_scripts == 0  # CSP script-src 'self' would block them
    paths = _same_origin_paths("/", html)
    assets = {p for p in paths if p.startswith("/static/")}
    assert {"/static/page/page.js", "/static/page/page.css"} <= assets
    types = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".svg": "image/svg+xml",
        ".txt": "text/plain",
    }
    for path in assets:
        served = client.get(path)
        assert served.status_code == 200, path
        assert served.content, path
        suffix = path[path.rfind(".") :]
        assert served.headers["content-type"].startswith(types[suffix]), path
    # The links to the docs resolve too.
    assert {"/docs", "/redoc"} <= set(paths)


def test_the_page_script_talks_only_to_this_server(client: TestClient) -> None:
    script = client.get("/static/page/page.js").text
    # No absolute URL anywhere: fetches and WebSockets are built from the page's own address.
    assert "http://" not in script and "https://" not in script
    assert "new URL(path, location.href)" in script
    # The API key convention: a Bearer header on fetch, the subprotocol pair on WebSockets.
    assert "Authorization: `Bearer ${state.key}`" in script
    assert '["vidrec", `bearer.${state.key}`]' in script


@pytest.mark.parametrize(
    ("route", "assets"),
    [
        ("/docs", {"/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css"}),
        ("/redoc", {"/static/docs/redoc.standalone.js"}),
    ],
)
def test_api_docs_load_their_assets_from_this_server(
    client: TestClient, route: str, assets: set[str]
) -> None:
    response = client.get(route)
    assert response.status_code == 200
    html = response.text
    assert "cdn" not in html.lower() and "fonts.googleapis" not in html
    paths = set(_same_origin_paths(route, html))
    assert assets <= paths
    assert "/static/docs/favicon.png" in paths
    for path in paths:
        served = client.get(path)
        assert served.status_code == 200, path
        assert len(served.content) > (100_000 if path.endswith(".js") else 100), path
    # The document the UI renders is referenced and served.
    assert "/openapi.json" in html
    assert client.get("/openapi.json").status_code == 200


def test_swagger_ui_makes_no_validator_request(client: TestClient) -> None:
    # Swagger UI's default badge loads an image from the public validator.
    assert '"validatorUrl": null' in client.get("/docs").text


def test_redoc_is_served_without_its_cdn_logo(client: TestClient) -> None:
    bundle = client.get("/static/docs/redoc.standalone.js").content
    assert b"cdn.redoc.ly" not in bundle
    assert b"API docs by Redocly" in bundle  # still the whole bundle, logo slot and all


@pytest.mark.parametrize("route", ["/docs", "/redoc"])
def test_api_docs_may_fetch_from_this_server_only(client: TestClient, route: str) -> None:
    policy = client.get(route).headers["content-security-policy"]
    assert policy == DOCS_CSP
    assert "default-src 'self'" in policy and "http" not in policy


@pytest.mark.parametrize(
    ("bundle", "licence"),
    [("swagger-ui-bundle.js", "Apache License"), ("redoc.standalone.js", "MIT License")],
)
def test_the_licence_files_the_bundles_name_are_served(
    client: TestClient, bundle: str, licence: str
) -> None:
    head = client.get(f"/static/docs/{bundle}").text[:200]
    assert f"{bundle}.LICENSE.txt" in head  # the bundle's banner names this file
    served = client.get(f"/static/docs/{bundle}.LICENSE.txt")
    assert served.status_code == 200
    assert licence in served.text


@pytest.mark.parametrize(
    "path",
    [
        "/static/page/nope.js",
        "/static/docs/index.html",
        "/static/page/..%2F..%2Fpage.py",
        "/static/page/%2E%2E%2Fpage.py",
        "/static/docs/..%2F..%2F__init__.py",
    ],
)
def test_only_the_listed_files_are_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_head_of_the_page_and_its_files(client: TestClient) -> None:
    for path in ("/", "/static/page/page.js"):
        response = client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""


def test_the_page_and_docs_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/docs", "/redoc"} & set(paths)
    assert not [p for p in paths if p.startswith("/static/")]
