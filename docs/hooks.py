"""MkDocs hooks: the pages that come from elsewhere, and the checks that keep the docs true.

- README.md is the site's home page and CHANGELOG.md its changelog: both live at the top
  of the repository, where people browsing it look first; the site takes them as they
  are, with their links into ``docs/`` made relative to the site.
- docs/configuration.md is generated from ``authserver.config.Settings`` (each setting's
  documentation is declared with it) and ``authserver.serve.SERVER_SETTINGS``: the build
  fails when the committed page differs (``make config-reference`` rewrites it), and when
  a page names an ``AUTHSERVER_*`` variable that does not exist.
"""

from __future__ import annotations

import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

from authserver.config import Settings
from authserver.serve import SERVER_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
# (repository file, page in the site)
PAGES = (("README.md", "index.md"), ("CHANGELOG.md", "changelog.md"))
REFERENCE = ROOT / "docs" / "configuration.md"
# Read by the test suite only (docs/development.md).
TEST_SETTINGS = ("AUTHSERVER_TEST_DATABASE_URL", "AUTHSERVER_TEST_REDIS_URL")
VARIABLE = re.compile(r"\bAUTHSERVER_[A-Z0-9_]*[A-Z0-9]")

INTRO = """\
# Configuration reference

<!-- Generated from authserver/config.py (Settings) and authserver/serve.py
(SERVER_SETTINGS) by `make config-reference`; the docs build fails when it drifts. -->

Environment variables; a `.env` file in the working directory is read too (real
environment variables win). `AUTHSERVER_ENV=production` refuses to start while a
development-only setting is in use: generated keys, SQLite, console SMS, debug, or an
`http://` issuer. Durations are in seconds unless the name says otherwise.

| variable | meaning | default |
| --- | --- | --- |
"""

SERVER_INTRO = """
Read by `authserver serve` from the environment (not from `.env`), before the app starts:

| variable | meaning | default |
| --- | --- | --- |
"""


def _default(value: object) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ("", b""):
        return "—"
    return f"`{value}`"


def configuration_reference() -> str:
    """docs/configuration.md as the code declares it."""
    rows = []
    for spec in fields(Settings):
        if "doc" not in spec.metadata:
            if spec.name == "generated_keys":  # derived at start-up, not a setting
                continue
            raise PluginError(
                f"Settings.{spec.name} has no documentation: declare it with setting(...)"
            )
        assert spec.default is not MISSING
        shown = spec.metadata["shown"] or _default(spec.default)
        rows.append(f"| `AUTHSERVER_{spec.name.upper()}` | {spec.metadata['doc']} | {shown} |")
    server = [f"| `{name}` | {doc} | {shown} |" for name, (doc, shown) in SERVER_SETTINGS.items()]
    return INTRO + "\n".join(rows) + "\n" + SERVER_INTRO + "\n".join(server) + "\n"


def known_variables() -> set[str]:
    names = {f"AUTHSERVER_{spec.name.upper()}" for spec in fields(Settings)}
    return names - {"AUTHSERVER_GENERATED_KEYS"} | set(SERVER_SETTINGS) | set(TEST_SETTINGS)


def unknown_variables(text: str) -> set[str]:
    return set(VARIABLE.findall(text)) - known_variables()


def site_text(text: str) -> str:
    """A top-level page's Markdown as seen from docs/: `docs/x.md` -> `x.md`."""
    text = re.sub(r"\]\(docs/\)", "](index.md)", text)
    text = re.sub(r"\]\(docs/", "](", text)
    return re.sub(r"\]\(CHANGELOG\.md", "](changelog.md", text)


def on_files(files: Files, config) -> Files:
    if REFERENCE.read_text() != configuration_reference():
        raise PluginError(
            "docs/configuration.md differs from the settings declared in the code: "
            "run `make config-reference` and commit the result"
        )
    for source, page in PAGES:
        text = site_text((ROOT / source).read_text())
        files.append(File.generated(config, page, content=text))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    unknown = unknown_variables(markdown)
    if unknown:
        raise PluginError(
            f"{page.file.src_uri} names settings that do not exist: {', '.join(sorted(unknown))}"
        )
    return markdown


if __name__ == "__main__":  # make config-reference
    REFERENCE.write_text(configuration_reference())
    sys.exit(0)
