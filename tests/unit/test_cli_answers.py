"""What the CLI takes from a server's answer: a wait it bounds, and text it shows as text."""

from __future__ import annotations

import pytest
import requests

from directupload_cli import output
from directupload_cli.api import MAX_RETRY_AFTER, retry_after


def reply_with(retry: str) -> requests.Response:
    reply = requests.Response()
    reply.status_code = 503
    reply.headers["Retry-After"] = retry
    return reply


@pytest.mark.parametrize(
    ("header", "wait"),
    [("5", 5.0), ("0", 0.0), ("999999999", MAX_RETRY_AFTER), ("9" * 5000, MAX_RETRY_AFTER), ("٣", None), ("-1", None)],
)
def test_a_servers_retry_after_is_waited_for_at_most_a_minute(header: str, wait: float | None) -> None:
    assert retry_after(reply_with(header)) == wait


def test_a_records_text_is_shown_as_text_not_as_terminal_controls_or_markup(capsys: pytest.CaptureFixture[str]) -> None:
    record = {
        "uploadId": "a" * 32,
        "status": "REJECTED",
        "error": {"code": "type-mismatch", "message": "\x1b]0;owned\x07 \x1b[2J [bold red]fake[/] \u202etxt.exe"},
    }
    output.console.width = 400
    assert output.report(record, as_json=False) != 0
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "\x1b]0;" not in text and "\x1b[2J" not in text and "\u202e" not in text
    assert "[bold red]fake[/]" in text  # the server's brackets, printed as they were sent
