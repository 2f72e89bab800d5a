"""Progress of a transfer: a live rich bar on a terminal; plain lines (``note``) when stderr is a
log; nothing with --quiet."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from directupload_cli.output import console


class ProgressView:
    """Progress for the whole file, shared by every part (``advance`` is thread-safe)."""

    def __init__(self, quiet: bool, total: int, label: str) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=quiet or not console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def note(self, message: str) -> None:
        """A line for logs when there is no live progress bar."""
        if not self.quiet and self.progress.disable:
            console.print(message)

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
