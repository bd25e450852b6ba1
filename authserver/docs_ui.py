"""``GET /docs``: Swagger UI over ``/openapi.json``, entirely from this server.

The Swagger UI files come from the ``swagger-ui-py`` package (Swagger UI 5, which reads
OpenAPI 3.1); nothing is fetched from a CDN. The page has no inline script or style, so
it runs under a strict Content-Security-Policy: scripts and connections to this origin
only.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory, url_for
from markupsafe import escape

from authserver.openapi import PUBLIC, ApiErrorBody, Reply, documented

bp = Blueprint("docs", __name__)

JAVASCRIPT = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"

# The files of the package this page uses (the package holds 30 MB more: not served).
PACKAGED = {
    "swagger-ui-bundle.js": JAVASCRIPT,
    "swagger-ui.css": CSS,
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
ASSET_TYPES = tuple(sorted({kind.partition(";")[0] for kind in PACKAGED.values()}))

# Ours: starting Swagger UI from a file (not an inline script) keeps the CSP strict.
OWN = {
    "docs.js": (
        JAVASCRIPT,
        """\
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
""",
    ),
    "docs.css": (
        CSS,
        "html { box-sizing: border-box; overflow-y: scroll; }\n"
        "*, *:before, *:after { box-sizing: inherit; }\n"
        "body { margin: 0; background: #fafafa; }\n",
    ),
}

# Swagger UI sets inline styles from its scripts, and its stylesheet embeds data: images.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSET_MAX_AGE = 86400

PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>authserver API</title>
<link rel="stylesheet" href="{swagger_css}">
<link rel="stylesheet" href="{docs_css}">
<link rel="icon" type="image/png" href="{icon}" sizes="32x32">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{bundle}"></script>
<script src="{docs_js}"></script>
</body>
</html>
"""


@cache
def swagger_ui_dir() -> Path:
    """The package's dist folder, found without importing it (its import costs 0.4 s)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@bp.get("/docs")
@documented(
    "This API documented for a person (Swagger UI)",
    tags=["docs"],
    responses={200: Reply(str, "An HTML page.", media_type="text/html")},
    security=PUBLIC,
)
def page() -> Response:
    def asset(name: str) -> str:
        return str(escape(url_for("docs.asset", filename=name)))

    html = PAGE.format(
        swagger_css=asset("swagger-ui.css"),
        docs_css=asset("docs.css"),
        icon=asset("favicon-32x32.png"),
        spec=escape(url_for("openapi.openapi_json")),
        bundle=asset("swagger-ui-bundle.js"),
        docs_js=asset("docs.js"),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/docs/static/<path:filename>")
@documented(
    "A file of the documentation page (Swagger UI script, stylesheet, icon)",
    tags=["docs"],
    responses={
        200: Reply(str, "The file.", media_type=ASSET_TYPES),
        404: Reply(ApiErrorBody, "No such file."),
    },
    security=PUBLIC,
)
def asset(filename: str) -> Response:
    if filename in OWN:
        mimetype, text = OWN[filename]
        response = Response(text, content_type=mimetype)
        response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}"
    elif filename in PACKAGED:
        response = send_from_directory(swagger_ui_dir(), filename, max_age=ASSET_MAX_AGE)
        response.headers["Content-Type"] = PACKAGED[filename]
    else:
        abort(404)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
