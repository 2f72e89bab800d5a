"""mkdocs hooks (mkdocs.yml ``hooks:``): the site's Security page is the top-level SECURITY.md.

SECURITY.md stays where GitHub looks for it and links into the docs as ``docs/<page>.md``; on
the site the page lives in docs/, so those links lose their ``docs/`` prefix here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS_LINK = re.compile(r"\]\(docs/")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri == "security.md":
        return DOCS_LINK.sub("](", (ROOT / "SECURITY.md").read_text())
    return markdown
