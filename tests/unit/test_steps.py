"""Processing steps, with bytes alone: what each reports, and that every corrupt or cut-off
file of its kind ends in a permanent rejection (never a retry)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import ExifTags, Image

from directupload import profiles
from directupload.errors import Rejected
from directupload.models import UploadRecord
from directupload.processing import image, pdf, verify
from directupload.processing.steps import STEPS, Derived, VerifiedObject, registry
from tests.records import upload_record
from tests.support.samples import a_pdf as a_pdf  # re-exported: test_sniff imports it from here

UPLOAD_ID = "0123456789abcdef0123456789abcdef"
GPS = {
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0),
    ExifTags.GPS.GPSLongitudeRef: "E",
    ExifTags.GPS.GPSLongitude: (13.0, 24.0, 36.0),
}


def record(content_type: str = "image/png", size: int = 1) -> UploadRecord:
    return upload_record(content_type=content_type, size=size)


def verified(data: bytes, content_type: str = "image/png") -> VerifiedObject:
    return VerifiedObject(
        record=record(content_type, len(data)),
        bucket="b",
        key=f"incoming/{UPLOAD_ID}/f",
        size=len(data),
        sha256="0" * 64,
        sniffed_type=content_type,
        etag="e",
        body=io.BytesIO(data),
    )


# --- sample files ------------------------------------------------------------------------------


def picture(width: int = 300, height: int = 200) -> Image.Image:
    return Image.linear_gradient("L").convert("RGB").resize((width, height))


def encode(fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    if fmt == "GIF":  # animated: every frame has to decode
        frames = [picture().convert("P")] + [Image.new("P", (300, 200), i * 40) for i in range(1, 4)]
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    else:
        picture().save(buf, fmt, **options)
    return buf.getvalue()


def jpeg_with_gps(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.GPSInfo] = GPS
    buf = io.BytesIO()
    picture().save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def truncated(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def cut_out_middle(data: bytes) -> bytes:
    """Half the file gone, its start and its last bytes intact (so end markers are still there)."""
    return data[: len(data) // 2] + data[-16:]


def flipped_middle(data: bytes) -> bytes:
    third = len(data) // 3
    return data[:third] + bytes(b ^ 0xFF for b in data[third : 2 * third]) + data[2 * third :]


IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


# --- registry ----------------------------------------------------------------------------------


def test_every_registered_step_loads_with_what_the_registry_says_of_it() -> None:
    for name, step in registry().items():
        assert step.run.__module__ == f"directupload.processing.{STEPS[name].module}"
    for profile in profiles.BUILTIN_PROFILES.values():
        assert profile.steps[0] == "verify"


def test_a_profile_naming_an_unregistered_step_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown processing steps"):
        profiles.Profile(name="notes", content_types=("text/plain",), max_size=10, steps=("verify", "ocr"))


def test_a_derived_object_is_a_plain_file_name() -> None:
    for bad in ("", "../x", "a/b", ".."):
        with pytest.raises(ValueError, match="plain file name"):
            Derived(bad, b"", "text/plain")


# --- verify ------------------------------------------------------------------------------------


def test_verify_step_reports_what_was_checked() -> None:
    obj = verified(b"abc", "text/plain")
    assert verify.run(obj).fields == {"size": 3, "sha256": "0" * 64, "contentType": "text/plain"}


# --- image -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_reports_dimensions_and_makes_a_webp_thumbnail(fmt: str) -> None:
    out = image.run(verified(encode(fmt), IMAGE_FORMATS[fmt]))

    assert (out.fields["width"], out.fields["height"], out.fields["format"]) == (300, 200, fmt)
    [thumb] = out.derived
    assert thumb.name == "thumbnail.webp" and thumb.content_type == "image/webp"
    assert out.fields["thumbnail"] == {
        "key": f"derived/{UPLOAD_ID}/thumbnail.webp",
        "width": 256,
        "height": 171,
        "contentType": "image/webp",
    }
    with Image.open(io.BytesIO(thumb.data)) as img:
        assert (img.format, img.size) == ("WEBP", (256, 171))


def test_thumbnail_of_a_jpeg_with_gps_exif_carries_no_metadata() -> None:
    # Given a JPEG whose EXIF holds a GPS position and the camera make
    data = jpeg_with_gps()
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"

    # When the image step makes its thumbnail
    [thumb] = image.run(verified(data, "image/jpeg")).derived

    # Then the derived copy has no EXIF at all: no GPS, no make, no XMP or ICC either
    with Image.open(io.BytesIO(thumb.data)) as img:
        assert not img.getexif()
        assert not {"exif", "xmp", "icc_profile"} & set(img.info)
    assert b"Exif" not in thumb.data and b"TestCam" not in thumb.data
    assert b"EXIF" not in thumb.data and b"XMP " not in thumb.data  # WebP metadata chunks


def test_thumbnail_follows_the_exif_orientation() -> None:
    out = image.run(verified(jpeg_with_gps(orientation=6), "image/jpeg"))  # 6: rotate 90 degrees to display
    assert (out.fields["thumbnail"]["width"], out.fields["thumbnail"]["height"]) == (171, 256)


def test_palette_image_with_transparency_keeps_its_alpha() -> None:
    img = Image.new("P", (20, 10), 0)
    img.info["transparency"] = 0
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    [thumb] = image.run(verified(buf.getvalue())).derived
    with Image.open(io.BytesIO(thumb.data)) as out:
        assert out.mode == "RGBA"


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_image_is_rejected(fmt: str, cut: float) -> None:
    with pytest.raises(Rejected) as caught:
        image.run(verified(truncated(encode(fmt), cut), IMAGE_FORMATS[fmt]))
    assert caught.value.code == "corrupt-image"


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_cut_short_by_its_last_byte_is_rejected(fmt: str) -> None:
    # Pillow alone decodes a PNG missing its IEND chunk or a GIF missing its trailer
    with pytest.raises(Rejected) as caught:
        image.run(verified(encode(fmt)[:-1], IMAGE_FORMATS[fmt]))
    assert caught.value.code == "corrupt-image"


@pytest.mark.parametrize("damage", [flipped_middle, cut_out_middle])
@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP"])
def test_image_damaged_inside_is_rejected(fmt: str, damage: Any) -> None:
    with pytest.raises(Rejected) as caught:
        image.run(verified(damage(encode(fmt)), IMAGE_FORMATS[fmt]))
    assert caught.value.code == "corrupt-image"


def test_jpeg_with_broken_entropy_data_is_rejected() -> None:
    # JPEG carries no checksum: damage that still decodes is undetectable, but a broken stream is not
    with pytest.raises(Rejected, match="cannot be decoded"):
        image.run(verified(flipped_middle(encode("JPEG")), "image/jpeg"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        b"GIF89a",
        b"\xff\xd8\xff\xe0" + b"\x00" * 50,
        b"RIFF\x10\x00\x00\x00WEBPVP8 ",
        b"not an image",
    ],
)
def test_header_only_or_garbage_image_is_rejected(data: bytes) -> None:
    with pytest.raises(Rejected) as caught:
        image.run(verified(data))
    assert caught.value.code == "corrupt-image"


@pytest.mark.parametrize(
    ("case", "limit"),
    [
        # Pillow only warns between 1x and 2x its limit ...
        ("one pixel over the limit", 300 * 200 - 1),
        # ... and raises over 2x, at open, before our own check of the size can run
        ("over twice the limit", 100 * 100),
    ],
)
def test_image_over_the_pixel_limit_is_rejected_as_too_large(
    monkeypatch: pytest.MonkeyPatch, case: str, limit: int
) -> None:
    monkeypatch.setattr(image, "MAX_PIXELS", limit)
    with pytest.raises(Rejected) as caught:
        image.run(verified(encode("PNG")))  # 300 x 200
    assert caught.value.code == "image-too-large", (case, caught.value.message)
    assert str(limit) in caught.value.message


def test_image_at_the_pixel_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image, "MAX_PIXELS", 300 * 200)
    assert image.run(verified(encode("PNG"))).fields["width"] == 300


# --- pdf ---------------------------------------------------------------------------------------


def test_pdf_reports_its_pages() -> None:
    assert pdf.run(verified(a_pdf(3), "application/pdf")).fields == {"pages": 3, "encrypted": False}


def test_encrypted_pdf_that_needs_a_password_is_accepted_without_a_page_count() -> None:
    data = a_pdf(2, user="s3cret", owner="owner")
    assert pdf.run(verified(data, "application/pdf")).fields == {"pages": None, "encrypted": True}


def test_encrypted_pdf_with_only_an_owner_password_reports_its_pages() -> None:
    data = a_pdf(4, owner="owner", algorithm="RC4-128")  # opens with the empty user password
    assert pdf.run(verified(data, "application/pdf")).fields == {"pages": 4, "encrypted": True}


ENCRYPTED_PDF = {"user-password": {"user": "s3cret", "owner": "o"}, "owner-only": {"owner": "o"}}


@pytest.mark.parametrize("kind", [None, *ENCRYPTED_PDF])
@pytest.mark.parametrize("cut", [0.1, 0.5, 0.95])
def test_truncated_pdf_is_rejected(kind: str | None, cut: float) -> None:
    data = a_pdf(3, **ENCRYPTED_PDF[kind]) if kind else a_pdf(3)
    with pytest.raises(Rejected) as caught:
        pdf.run(verified(truncated(data, cut), "application/pdf"))
    assert caught.value.code == "corrupt-pdf"


@pytest.mark.parametrize("kind", [None, *ENCRYPTED_PDF])
def test_pdf_with_its_middle_cut_out_is_rejected(kind: str | None) -> None:
    data = a_pdf(3, **ENCRYPTED_PDF[kind]) if kind else a_pdf(3)
    with pytest.raises(Rejected) as caught:
        pdf.run(verified(cut_out_middle(data), "application/pdf"))
    assert caught.value.code == "corrupt-pdf"


@pytest.mark.parametrize("kind", list(ENCRYPTED_PDF))
def test_encrypted_pdf_with_a_damaged_encryption_dictionary_is_rejected(kind: str) -> None:
    with pytest.raises(Rejected, match="cannot be read"):
        pdf.run(verified(flipped_middle(a_pdf(3, **ENCRYPTED_PDF[kind])), "application/pdf"))


@pytest.mark.parametrize("data", [b"%PDF-1.7\n" + bytes(200) + b"\n%%EOF\n", b"%PDF-1.4\n%%EOF", b"%%EOF"])
def test_garbage_pdf_is_rejected(data: bytes) -> None:
    with pytest.raises(Rejected) as caught:
        pdf.run(verified(data, "application/pdf"))
    assert caught.value.code == "corrupt-pdf"


def test_pdf_without_pages_is_rejected() -> None:
    with pytest.raises(Rejected, match="no pages"):
        pdf.run(verified(a_pdf(0), "application/pdf"))


# --- a corpus of mutated files: every one ends as a result or a rejection -----------------------


def _mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    """Deterministic damage: flipped bytes, cut-offs, spliced repeats, zeroed runs."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        buf = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == 1:
            buf = buf[: rng.randrange(1, len(buf))]
        elif kind == 2:
            at = rng.randrange(len(buf))
            buf[at:at] = buf[rng.randrange(len(buf)) :][: rng.randint(1, 64)]
        else:
            at = rng.randrange(len(buf))
            buf[at : at + rng.randint(1, 32)] = bytes(32)
        out.append(bytes(buf))
    return out


def _samples() -> dict[str, tuple[str, bytes]]:
    from pypdf import PdfWriter

    def saved(fmt: str, **options: Any) -> bytes:
        buf = io.BytesIO()
        frames = [Image.new("RGB", (24, 16), (i * 40, 90, 200 - i * 30)) for i in range(3)]
        if fmt == "GIF":
            frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **options)
        else:
            frames[0].save(buf, fmt, **options)
        return buf.getvalue()

    writer = PdfWriter()
    writer.add_blank_page(72, 72)
    pdf_buf = io.BytesIO()
    writer.write(pdf_buf)
    return {
        "png": ("image", saved("PNG")),
        "gif": ("image", saved("GIF")),
        "jpeg": ("image", saved("JPEG", progressive=True)),
        "webp": ("image", saved("WEBP")),
        "pdf": ("pdf", pdf_buf.getvalue()),
    }


@pytest.mark.parametrize("sample", ["png", "gif", "jpeg", "webp", "pdf"])
def test_no_mutation_of_a_valid_file_makes_a_step_raise_anything_but_a_rejection(sample: str) -> None:
    from directupload.processing.steps import run_step

    step_name, data = _samples()[sample]
    step = registry()[step_name]
    outcomes: dict[str, int] = {}
    for mutated in _mutations(data, 150, seed=len(sample)):
        try:
            run_step(step, verified(mutated, "application/pdf" if sample == "pdf" else f"image/{sample}"))
            outcomes["accepted"] = outcomes.get("accepted", 0) + 1
        except Rejected as rejection:
            outcomes[rejection.code] = outcomes.get(rejection.code, 0) + 1
    assert set(outcomes) <= {"accepted", "corrupt-image", "corrupt-pdf", "image-too-large", "too-complex"}, outcomes
    assert sum(v for k, v in outcomes.items() if k != "accepted") > 0  # the damage was seen


def test_a_16_bit_greyscale_png_of_any_size_gets_its_thumbnail() -> None:
    # Pillow shrinks a large image by reduction first, which 16-bit greyscale does not support
    for side in (400, 1200):
        buf = io.BytesIO()
        Image.linear_gradient("L").resize((side, side)).convert("I").point(lambda v: v * 256).convert("I;16").save(
            buf, "PNG"
        )
        result = image.run(verified(buf.getvalue()))
        thumb = Image.open(io.BytesIO(result.derived[0].data))
        assert (result.fields["width"], thumb.size) == (side, (256, 256))
        darkest, lightest = thumb.convert("L").getextrema()  # the gradient: its light end stays light
        assert isinstance(lightest, int) and lightest > 200 and darkest < lightest


@pytest.mark.parametrize(
    ("declared", "data"),
    [
        ("image/jpeg", encode("JPEG2000")),
        ("image/jpeg", encode("PNG")),
        ("image/png", encode("TIFF")),
        ("image/gif", encode("BMP")),
    ],
)
def test_an_image_decodes_only_as_its_declared_format(declared: str, data: bytes) -> None:
    # (verification refuses these first; the step holds on its own: no other decoder is tried)
    with pytest.raises(Rejected) as caught:
        image.run(verified(data, declared))
    assert caught.value.code == "corrupt-image"


def test_a_pdf_that_makes_its_parser_warn_writes_no_line_and_no_byte_of_itself(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # a catalog entry of 20,000 keys that are not names: pypdf repairs each one, warning each time
    def with_catalog_entry(entry: bytes) -> bytes:
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R /X " + entry + b" >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
        ]
        out, offsets = bytearray(b"%PDF-1.7\n"), []
        for number, body in enumerate(objects, 1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
        return bytes(out + b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)

    for entry in (b"<< " + b"1 " * 20_000 + b">>", b"<< (ATTACKER-CHOSEN-TEXT " + b"x" * 50_000 + b") 1 >>"):
        assert pdf.run(verified(with_catalog_entry(entry), "application/pdf")).fields["pages"] == 1
    written = capfd.readouterr()
    assert "ATTACKER" not in written.err + written.out
    assert len((written.err + written.out).splitlines()) < 5


def test_a_parser_crash_is_a_rejection_with_the_exception_type_only() -> None:
    from directupload.processing.steps import Step, run_step

    def crashes(obj: VerifiedObject) -> Any:
        raise IndexError("list index out of range at /var/task/secret/path.py")

    with pytest.raises(Rejected) as caught:
        run_step(Step("image", crashes), verified(b"GIF89a"))
    assert caught.value.code == "corrupt-image"
    assert "IndexError" in caught.value.message and "/var/task" not in caught.value.message


# --- decompression bombs: bounded before anything is decoded ------------------------------------


def gif_of_tiny_frames(width: int, height: int, frames: int, last_frame_at: tuple[int, int] = (0, 0)) -> bytes:
    """A GIF whose logical screen is width x height, holding `frames` frames of one pixel each
    (23 bytes a frame): tiny on disk, each frame decoded at the canvas size."""
    import struct

    head = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    body = bytearray()
    for i in range(frames):
        x, y = last_frame_at if i == frames - 1 else (0, 0)
        body += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control extension
        body += b"\x2c" + struct.pack("<HHHH", x, y, 1, 1) + b"\x00"  # one pixel at (x, y)
        body += b"\x02\x02\x44\x01\x00"  # its LZW data
    return head + bytes(body) + b";"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("case", "data", "code"),
    [
        # ~70 KB, a valid avatar by size, 3,000 frames on a 49 Mpx canvas: days of decoding
        ("thousands of frames", gif_of_tiny_frames(7000, 7000, 3000), "too-complex"),
        # few frames, but all of them at 40 Mpx each: 400 Mpx decoded in all
        ("frames x canvas", gif_of_tiny_frames(8000, 5000, 10), "too-complex"),
        # one frame over the pixel limit, even though Pillow would only warn below 2x
        ("one huge frame", gif_of_tiny_frames(9000, 7000, 1), "image-too-large"),
        # over 2x the limit Pillow's own guard raises at open: still too large, not corrupt
        ("one frame over twice the limit", gif_of_tiny_frames(11000, 10000, 1), "image-too-large"),
        # the last frame lies outside the logical screen: the canvas grows when it is reached
        (
            "canvas grown by a later frame",
            gif_of_tiny_frames(4000, 4000, 3, last_frame_at=(8000, 8000)),
            "image-too-large",
        ),
    ],
)
def test_image_bombs_are_rejected_before_they_are_decoded(case: str, data: bytes, code: str) -> None:
    from directupload.processing.steps import run_step

    with pytest.raises(Rejected) as caught:
        run_step(registry()["image"], verified(data, "image/gif"))
    assert caught.value.code == code, (case, caught.value.code, caught.value.message)
