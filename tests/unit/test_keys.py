from __future__ import annotations

import pytest

from directupload import keys


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\cv.pdf", "cv.pdf"),
        ("..", "file"),
        ("", "file"),
        ("a\x00b\x1fc\x7f.txt", "abc.txt"),
        ("evil\u202egnp.exe", "evilgnp.exe"),  # right-to-left override dropped
        ("\ud800broken.png", "broken.png"),  # lone surrogate (invalid Unicode) dropped
        ("cafe\u0301.jpg", "caf\u00e9.jpg"),  # NFC-normalised
        ("my  holiday   photo.jpg", "my holiday photo.jpg"),
        ("<b>x</b>.html", "b_.html"),  # basename after the last slash, markup neutralised
        ("<img onerror=x>.png", "img onerror=x_.png"),
        (".hidden", "hidden"),
    ],
)
def test_safe_filename(raw: str, safe: str) -> None:
    assert keys.safe_filename(raw) == safe


def test_long_names_are_capped_in_utf8_bytes_keeping_the_extension() -> None:
    name = keys.safe_filename("é" * 300 + ".jpeg")
    assert name.endswith(".jpeg")
    assert len(name.encode()) <= keys.MAX_FILENAME_BYTES
    name.encode().decode("utf-8")  # never cut inside a character


def test_keys_put_the_random_id_first() -> None:
    upload_id = keys.new_upload_id()
    assert keys.is_upload_id(upload_id)
    assert keys.incoming_key(upload_id, "../x/y z.png") == f"incoming/{upload_id}/y z.png"
    assert keys.upload_id_from_key(f"incoming/{upload_id}/y z.png") == upload_id
    assert keys.quarantine_key(f"incoming/{upload_id}/a.png") == f"quarantine/{upload_id}/a.png"
    assert keys.new_upload_id() != upload_id


def test_an_upload_that_needs_a_scan_is_staged_where_the_scanner_looks_and_served_from_the_same_place() -> None:
    upload_id = keys.new_upload_id()
    scanned = keys.incoming_key(upload_id, "report.pdf", scanned=True)
    plain = keys.incoming_key(upload_id, "report.pdf")
    assert scanned == f"incoming/scan/{upload_id}/report.pdf" and keys.is_scanned(scanned)
    assert plain == f"incoming/{upload_id}/report.pdf" and not keys.is_scanned(plain)
    for key in (scanned, plain):  # the staging prefix does not show anywhere after staging
        assert keys.upload_id_from_key(key) == upload_id
        assert keys.file_key(key) == f"files/{upload_id}/report.pdf"
        assert keys.quarantine_key(key) == f"quarantine/{upload_id}/report.pdf"


@pytest.mark.parametrize(
    "key",
    [
        "derived/abc/x.png",
        "incoming/not-an-id/x.png",
        "incoming/" + "a" * 32,
        "incoming/scan/" + "a" * 32,
        "incoming/scan/scan/" + "a" * 32 + "/x",
        "other",
    ],
)
def test_keys_outside_the_scheme_have_no_upload_id(key: str) -> None:
    assert keys.upload_id_from_key(key) is None


def test_event_keys_are_url_decoded() -> None:
    assert keys.key_from_event("incoming/abc/my+holiday+%281%29.png") == "incoming/abc/my holiday (1).png"
    assert keys.key_from_event("incoming/abc/a%2Bb.png") == "incoming/abc/a+b.png"
