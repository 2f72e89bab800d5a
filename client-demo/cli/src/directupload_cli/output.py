"""What the user sees: messages on stderr (rich markup), results on stdout (text or --json), and
each command's exit code from its result."""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from directupload_cli.errors import EXIT_OK, EXIT_OUTCOME, EXIT_PENDING
from directupload_cli.statuses import FINAL

console = Console(stderr=True, highlight=False, soft_wrap=True)


def program() -> list[str]:
    """How to run this CLI again, as it was run (for the messages that say how to resume): the
    command's name when it is on PATH, else its path; ``python -m directupload_cli`` for that."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("directupload")
    if argv0.name == "__main__.py":
        return ["python", "-m", "directupload_cli"]
    found = shutil.which(argv0.name)
    if found and argv0.exists() and Path(found).resolve() == argv0.resolve():
        return [argv0.name]
    return [str(argv0)]


def printable(text: str, replacement: str = "?") -> str:
    """Text from the server, safe to show: no control, format (bidi) or unassigned characters."""
    return "".join(replacement if unicodedata.category(c).startswith("C") else c for c in text)


def shown(value: object) -> str:
    """A server's value in a line of console markup: printable, and never read as markup."""
    return escape(printable(str(value)))


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def report(record: dict[str, Any], as_json: bool) -> int:
    """An upload's record (upload, status): processed 0, another final status 5, still going 1."""
    status = record["status"]
    if as_json:
        print(json.dumps(record, indent=2))
    if status == "PROCESSED":
        if not as_json:
            result = record.get("result") or {}
            console.print(
                f"[green]PROCESSED[/] {shown(record['uploadId'])}: {human(record['size'])}, "
                f"{shown(result.get('contentType') or record['contentType'])}, sha256 {shown(record.get('sha256'))}"
            )
        return EXIT_OK
    if status in FINAL:
        error = record.get("error") or {}
        console.print(
            f"[red]{status}[/] {shown(record['uploadId'])}: "
            f"{shown(error.get('code', ''))} {shown(error.get('message', ''))}".rstrip()
        )
        return EXIT_OUTCOME
    console.print(
        f"[yellow]{shown(status)}[/] {shown(record['uploadId'])}: still processing; check later with: "
        f"{' '.join(program())} status {shown(record['uploadId'])}"
    )
    return EXIT_PENDING


def report_download(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        checked = (
            "SHA-256 verified"
            if "sha256" in result["checked"]
            else "size checked (the API gives no SHA-256 for a variant)"
        )
        console.print(
            f"[green]saved[/] {escape(printable(result['path']))}: {human(result['size'])}, "
            f"{escape(printable(result['contentType']))}, {checked}"
        )
    return EXIT_OK


LIST_COLUMNS = ("id", "status", "profile", "size", "created (UTC)", "filename")


def upload_table(items: list[dict[str, Any]]) -> str:
    """The uploads as aligned plain-text columns (the last one, the file name, unpadded)."""
    rows = [LIST_COLUMNS] + [
        tuple(
            printable(cell)
            for cell in (
                item["uploadId"],
                item["status"],
                item["profile"],
                human(item["size"]),
                datetime.fromisoformat(item["createdAt"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                item["filename"],
            )
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]) for row in rows
    )


def report_list(listing: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(listing, indent=2))
    elif listing["items"]:
        print(upload_table(listing["items"]))
    else:
        console.print("no uploads")
    if not as_json and listing.get("nextCursor"):
        console.print(f"more uploads: --all, or --cursor {listing['nextCursor']}")
    return EXIT_OK


def report_deleted(record: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(record, indent=2))
    else:
        done = {"CANCELLED": "nothing more can be sent", "DELETED": "its files are gone"}
        status = record["status"]
        console.print(f"{status} {record['uploadId']}" + (f": {done[status]}" if status in done else ""))
    return EXIT_OK
