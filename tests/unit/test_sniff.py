"""Content sniffing: what the first bytes say a file is, and when that contradicts the declared type."""

from __future__ import annotations

import io
import zipfile

import pytest

from directupload import sniff
from tests.unit.test_steps import a_pdf, encode

HEAD = sniff.HEAD_BYTES


def head(data: bytes) -> bytes:
    return data[:HEAD]


def check(declared: str, data: bytes) -> str | None:
    return sniff.mismatch(declared, head(data), sniff.sniff(head(data)))


def a_zip(*names: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, "hello " * 50)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")]
)
def test_images_are_sniffed_and_match_their_declaration(fmt: str, mime: str) -> None:
    data = encode(fmt)
    assert sniff.sniff(head(data)) == mime
    assert check(mime, data) is None


def test_pdf_is_sniffed_and_matches() -> None:
    assert sniff.sniff(head(a_pdf())) == "application/pdf"
    assert check("application/pdf", a_pdf()) is None
    assert check("application/x-pdf", a_pdf()) is None


def test_jpeg_aliases_are_one_family() -> None:
    assert check("image/jpg", encode("JPEG")) is None
    assert check("image/pjpeg", encode("JPEG")) is None


@pytest.mark.parametrize(
    ("declared", "fmt"), [("image/png", "JPEG"), ("image/jpeg", "PNG"), ("image/webp", "GIF"), ("image/gif", "WEBP")]
)
def test_an_image_declared_as_another_image_type_is_a_mismatch(declared: str, fmt: str) -> None:
    assert "declared" in (check(declared, encode(fmt)) or "")


@pytest.mark.parametrize(
    "declared",
    ["image/png", "application/pdf", "text/plain", "application/octet-stream", "video/mp4", "application/zip"],
)
@pytest.mark.parametrize("magic", [b"MZ\x90\x00\x03", b"\x7fELF\x02\x01\x01", b"\xcf\xfa\xed\xfe\x07\x00"])
def test_executables_are_refused_whatever_the_declared_type(declared: str, magic: bytes) -> None:
    assert check(declared, magic + b"\x00" * 200) == "the file is an executable"


def test_an_empty_or_unrecognisable_file_declared_as_an_image_is_a_mismatch() -> None:
    assert sniff.sniff(b"") is None
    assert check("image/png", b"") == "declared image/png but the bytes are unrecognised"
    assert "unrecognised" in (check("image/png", b"\x01\x02\x03\x04" * 10) or "")


def test_text_declared_types_accept_utf8_and_refuse_binary() -> None:
    assert check("text/plain", "héllo wörld\n".encode()) is None
    assert check("text/csv", b"a,b\n1,2\n") is None
    assert check("application/json", b'{"a": 1}') is None
    assert "binary" in (check("text/plain", b"abc\x00def") or "")
    assert "not UTF-8" in (check("text/plain", b"\xff\xfe\xfa" + b"latin" * 10) or "")


def test_a_character_cut_by_the_sniff_window_is_still_text() -> None:
    data = ("x" * (HEAD - 1) + "é").encode()  # the head ends inside the two bytes of é
    assert check("text/plain", data) is None


def test_declared_media_type_without_a_family_must_at_least_agree_on_the_kind() -> None:
    assert check("image/x-icon-ish", encode("PNG")) is None
    assert "declared video/x-flv" in (check("video/x-flv", encode("PNG")) or "")


def test_octet_stream_accepts_anything_but_executables() -> None:
    assert check("application/octet-stream", b"\x01\x02 whatever") is None
    assert check("application/octet-stream", encode("PNG")) is None


def test_mp4_is_sniffed() -> None:
    data = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
    assert check("video/mp4", data) is None


def test_a_plain_zip_matches_application_zip() -> None:
    assert check("application/zip", a_zip("a.txt", "b.csv")) is None


def test_an_id3_tagged_mp3_matches_audio_mpeg() -> None:
    assert check("audio/mpeg", b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 100) is None


# --- loose signatures and markup the first tag does not announce (found by attacking the processor)


def photo_cd() -> bytes:
    """Kodak PhotoCD: it starts with FF D8 (two bytes puremagic takes for a JPEG), no JPEG in it."""
    return b"\xff\xd8\x00<not a jpeg>" + b"\x00" * 2033 + b"PCD_IPI" + b"\x00" * 1532


@pytest.mark.parametrize(
    ("declared", "data", "never"),
    [
        ("image/jpeg", encode("JPEG2000"), "image/jpeg"),  # its box starts 00 00 00 0C 6A 50
        ("image/jpeg", photo_cd(), "image/jpeg"),
        ("image/webp", b"RIFF\x10\x00\x00\x00AVI LIST" + b"\x00" * 64, "image/webp"),
        ("application/octet-stream", b"notes: \x89PNG is how a PNG starts\n", "image/png"),
    ],
)
def test_bytes_without_the_exact_signature_of_a_type_are_never_it(declared: str, data: bytes, never: str) -> None:
    assert never not in sniff.candidates(head(data))
    if declared != "application/octet-stream":
        assert check(declared, data) is not None


@pytest.mark.parametrize(
    ("declared", "data"),
    [
        ("text/plain", b"<h1>Invoice</h1><img src=x onerror=alert(document.domain)><script>alert(1)</script>\n"),
        ("application/octet-stream", b"<!-- hi --><div onmouseover=alert(1)>x</div><script>alert(2)</script>\n"),
        ("text/csv", b"<H1>x</H1><iframe src=javascript:alert(1)></iframe>\n"),
        ("text/plain", b"hello\n<div><script>alert(1)</script></div></svg>"),
        # what a browser's sniffer takes for a page (the WHATWG list), in any case
        ("text/plain", b"<p>hi</p><script>alert(document.domain)</script>"),
        ("text/plain", b"  <B>bold</b><img src=x onerror=alert(1)>"),
        ("text/plain", b"<a href=javascript:alert(1)>x</a>"),
        ("text/plain", b"<style>body{}</style><title>x</title>"),
        ("text/plain", b"<!-- a comment, then words -->hello"),
        ("text/plain", b"<!-- one -->\n<!-- two -->\n<!DOCTYPE html>\n<p>x"),
        ("application/octet-stream", b'<?xml-stylesheet type="text/xsl" href="x.xsl"?><r/>'),
        # XHTML and SVG under a namespace prefix
        (
            "application/octet-stream",
            b'<?xml version="1.0"?><x:html xmlns:x="http://www.w3.org/1999/xhtml"><x:script>alert(1)</x:script></x:html>',
        ),
        ("text/plain", b'<s:svg xmlns:s="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ],
)
def test_markup_the_sniffer_finds_is_active_content_whatever_its_first_tag(declared: str, data: bytes) -> None:
    assert "active content" in (check(declared, data) or "")
    assert sniff.mismatch(declared, head(data), sniff.sniff(head(data)), allow_active=True) is None


def test_text_that_only_mentions_markup_is_still_text() -> None:
    assert check("text/plain", b"use <b> for bold, or **bold** in markdown\n") is None
    assert check("application/json", b'{"html": "<h1>title</h1>"}') is None
    for words in (
        b"<3 you\n",
        b"<note>not a page</note>\n",
        b"<pre-existing> condition\n",
        b"a,b\n<p>,c\n",
        b"<mailto:someone@example.com>\n",
        b"<img src=logo.png width=100>\n\n# Project\n",  # a README's logo: no browser sniffs it a page
        b"<details><summary>more</summary>...</details>\n",
    ):
        assert check("text/plain", words) is None, words
    # XML that is no page (GPX, KML, feeds) is what its profile declares, even naming XHTML
    gpx = b'<?xml version="1.0"?><gpx xmlns="http://www.topografix.com/GPX/1/1"><trk/></gpx>'
    assert check("application/octet-stream", gpx) is None
    mentions = b'{"cells": [{"outputs": [{"image/svg+xml": "<svg xmlns=\\"http://www.w3.org/2000/svg\\"/>"}]}]}'
    assert check("application/json", mentions) is None


@pytest.mark.parametrize(
    ("head", "active"),
    [
        # (a file that opens with a comment is a page to a browser's sniffer, whatever follows)
        (b"<!---->" * 1100 + b"x", True),
        (b"<!-- line of a template -->\n" * 280 + b"# Title\n", True),
        (b"  " + b"<!doctype x>" * 650 + b"x", False),
        (b"<!---->" * 1100 + b"<p>", True),
        (b"<?x?>" * 1600 + b"x", False),
        (b"<!doctype x>" * 650 + b"<svg>", True),
        (b"<!--" * 2000, True),
    ],
)
def test_runs_of_comments_and_declarations_are_read_in_one_pass(head: bytes, active: bool) -> None:
    # a head of 8 KiB of them: with backtracking into the runs, this would not end in a lifetime
    assert len(head) <= sniff.HEAD_BYTES
    assert sniff.is_active_content(head) is active
