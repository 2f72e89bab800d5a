"""What lets an interrupted multipart upload resume: one small JSON file per upload under way
(``--state-dir``, $DIRECTUPLOAD_STATE_DIR, or $XDG_STATE_HOME/directupload, by default
~/.local/state/directupload), written before the first part goes and removed once it completed.
Which parts S3 holds is asked of the API on resume, never kept here."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from directupload_cli.errors import RefusedError
from directupload_cli.output import console

# an upload id as the API makes them: the name of its state file, never a path
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def state_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("DIRECTUPLOAD_STATE_DIR"):
        return Path(os.environ["DIRECTUPLOAD_STATE_DIR"])
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "directupload"


@dataclass
class StateFile:
    directory: Path

    def path(self, upload_id: str) -> Path:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise RefusedError(f"the API answered with an upload id that is not one: {upload_id[:80]!r}")
        return self.directory / f"{upload_id}.json"

    def save(self, upload_id: str, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.path(upload_id).with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self.path(upload_id))
        except OSError as exc:
            console.print(f"[yellow]warning:[/] cannot write the resume state in {self.directory}: {exc}")

    def remove(self, upload_id: str) -> None:
        self.path(upload_id).unlink(missing_ok=True)

    def unfinished(self, file: Path, size: int) -> list[dict[str, Any]]:
        """Earlier uploads of this very file that never finished."""
        found = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if data.get("file") == str(file) and data.get("size") == size:
                found.append(data)
        return found
