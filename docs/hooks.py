"""MkDocs hooks: README.md is the site's home page and CHANGELOG.md its changelog.

Both live at the top of the repository, where people browsing it look first; the site
takes them as they are, with their links into ``docs/`` made relative to the site.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# (repository file, page in the site)
PAGES = (("README.md", "index.md"), ("CHANGELOG.md", "changelog.md"))


def site_text(text: str) -> str:
    """A top-level page's Markdown as seen from docs/: `docs/x.md` -> `x.md`."""
    text = re.sub(r"\]\(docs/\)", "](index.md)", text)
    text = re.sub(r"\]\(docs/", "](", text)
    return re.sub(r"\]\(CHANGELOG\.md", "](changelog.md", text)


def on_files(files: Files, config) -> Files:
    for source, page in PAGES:
        text = site_text((ROOT / source).read_text())
        files.append(File.generated(config, page, content=text))
    return files
