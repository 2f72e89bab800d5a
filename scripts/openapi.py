"""Print the OpenAPI document the API serves at GET /openapi.json, without a running stack.

    .venv/bin/python scripts/openapi.py > openapi.json

The document is generated from the route models (handlers/api.py) and does not depend on the
configuration, but importing the handler validates settings at cold start: placeholders stand in
for the resource names, which appear nowhere in the document.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = {
    "UPLOADS_TABLE": "openapi",
    "UPLOADS_BUCKET": "openapi",
    "EVENT_BUS_NAME": "openapi",
    "AUTH_MODE": "none",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def document() -> str:
    for name, value in PLACEHOLDERS.items():
        os.environ.setdefault(name, value)
    sys.path.insert(0, str(ROOT / "functions"))
    from handlers import api

    return api.openapi_document()


if __name__ == "__main__":
    sys.stdout.write(document() + "\n")
