"""The names a download is saved under: the RFC 8187 one and the ASCII fallback that clients
without it (``curl -OJ``, older agents) save under, both checked for what would run or render."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from directupload import downloads

OCTETS = "application/octet-stream"


def saved(filename: str, content_type: str = OCTETS) -> tuple[str, str]:
    """(the fallback ``filename=``, the decoded ``filename*=``) a download of ``filename`` carries."""
    name = downloads.served_name(filename, content_type)
    header = downloads.disposition(name, content_type, inline=False)
    fallback = re.search(r'filename="([^"]*)"', header)
    extended = re.search(r"filename\*=UTF-8''(\S+)$", header)
    assert fallback is not None and extended is not None, header
    assert fallback.group(1).isascii() and header.isascii()
    return fallback.group(1), unquote(extended.group(1))


@pytest.mark.parametrize(
    ("filename", "fallback"),
    [
        # a letter that is not ASCII sits inside the extension: dropping it would join one
        ("pay.eéxe", "pay.eexe"),
        ("report.htmlé", "report.htmle"),
        # compatibility forms are the letters they stand for
        ("x.\uff28\uff34\uff2d\uff2c", "x.HTML.bin"),
        ("run.\uff45\uff58\uff45", "run.exe.bin"),
        # names of no ASCII letters keep their length and extension, never a hidden dotfile
        ("日本語.pdf", "___.pdf"),
    ],
)
def test_the_ascii_fallback_never_names_what_the_real_name_did_not(filename: str, fallback: str) -> None:
    got_fallback, got_name = saved(filename)
    assert got_fallback == fallback
    assert not got_fallback.lower().endswith((".exe", ".html"))
    assert got_name.startswith(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "invoice.wsf",
        "link.url",
        "page.mhtml",
        "setup.msix",
        "tool.reg",
        "macro.xlsm",
        "run.desktop",
        "a.PIF",
        "b.JsE",
        "gui.pyw",
        # what Windows drops from a name's end does not hide the extension before it
        "evil.vbs.",
        "evil.exe ",
        "evil.exe. . ",
        "evil.exe\u3000",
        # a name that is only an extension has that extension
        ".hta",
    ],
)
def test_names_a_system_would_run_or_render_get_bin_on_bytes_nothing_recognised(filename: str) -> None:
    fallback, name = saved(filename)
    assert name == f"{filename}.bin"
    assert fallback.endswith(".bin")


@pytest.mark.parametrize(
    ("filename", "content_type", "name"),
    [
        ("notes.txt", "text/plain", "notes.txt"),
        ("archive.tar.gz", OCTETS, "archive.tar.gz"),
        ("data.bin", OCTETS, "data.bin"),
        ("photo.PNG", "image/png", "photo.PNG"),
        ("invoice.html", "application/pdf", "invoice.pdf"),
        ("Résumé.pdf", "application/pdf", "Résumé.pdf"),
    ],
)
def test_ordinary_names_are_saved_as_they_are(filename: str, content_type: str, name: str) -> None:
    fallback, extended = saved(filename, content_type)
    assert extended == name
    assert fallback == downloads.ascii_name(name)
