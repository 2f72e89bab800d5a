"""The ``image`` step: dimensions, and a WebP thumbnail without the original's metadata.

The thumbnail is rebuilt from pixel data alone, so nothing of the original's EXIF (GPS
position, camera serial, capture time), XMP or ICC text survives into the derived copy;
the orientation EXIF asked for is applied to the pixels first.
"""

from __future__ import annotations

import io
import warnings
from typing import IO, Any

from directupload import sniff
from directupload.errors import Rejected
from directupload.processing.steps import THUMBNAIL_NAME, Derived, StepResult, VerifiedObject

THUMBNAIL_BOX = (256, 256)
# Decompression-bomb guards, checked before decoding: a frame over 50 megapixels, more than
# MAX_FRAMES frames, or more than MAX_DECODED_PIXELS in all frames together (what decoding the
# animation costs: a tiny GIF of thousands of 1x1 frames on a huge canvas decodes every frame
# at the canvas size).
MAX_PIXELS = 50_000_000
MAX_FRAMES = 1000
MAX_DECODED_PIXELS = 200_000_000
# Formats whose last bytes are fixed. Pillow decodes a PNG without its IEND chunk or a GIF
# without its trailer, but a file cut short is corrupt, not complete.
_ENDINGS = {"PNG": b"IEND\xaeB`\x82", "GIF": b";"}
# The one decoder each declared type is opened with. Pillow otherwise tries every plugin it has,
# some of which check no magic bytes at all (PhotoCD, TGA, IM): bytes declared a JPEG must decode
# as a JPEG (its decoder also opens a camera's multi-picture JPEG, MPO) or not at all.
DECODERS = {
    "image/jpeg": ("JPEG",),
    "image/png": ("PNG",),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/tiff": ("TIFF",),
    "image/bmp": ("BMP",),
    "image/avif": ("AVIF",),
}


def _cut_short(fmt: str | None, body: IO[bytes]) -> bool:
    ending = _ENDINGS.get(fmt or "")
    if ending is None:
        return False
    body.seek(-len(ending), 2)
    cut = body.read() != ending
    body.seek(0)
    return cut


def run(obj: VerifiedObject) -> StepResult:
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is corrupt, never half a picture
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    body = obj.read()
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x MAX_IMAGE_PIXELS: here that is a rejection too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _run(obj, body)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        # Pillow's own guard, from the size in the header (at open, or when a later GIF frame grows
        # the canvas), fires before ours can: over 2x the limit it raises instead of warning. Either
        # way the image is over the pixel limit, not corrupt.
        raise Rejected("image-too-large", f"the image is over {MAX_PIXELS} pixels") from exc


def _bounded(img: Any) -> int:
    """The frame count, if decoding every frame at this canvas stays within the budget."""
    frames = int(getattr(img, "n_frames", 1))  # read from the frame headers, nothing decoded
    if frames > MAX_FRAMES:
        raise Rejected("too-complex", f"{frames} frames is over the limit of {MAX_FRAMES}")
    _within_budget(img, frames)
    return frames


def _within_budget(img: Any, frames: int) -> None:
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise Rejected("image-too-large", f"{width}x{height} is over {MAX_PIXELS} pixels")
    if width * height * frames > MAX_DECODED_PIXELS:
        raise Rejected("too-complex", f"{frames} frames of {width}x{height} is over {MAX_DECODED_PIXELS} pixels")


def _decoders(obj: VerifiedObject) -> tuple[str, ...]:
    declared = sniff.family(obj.record.content_type)
    formats = DECODERS.get(declared) or DECODERS.get(sniff.family(obj.sniffed_type or ""))
    if formats is None:
        raise Rejected("unsupported-image", f"no image decoder for {declared}")
    return formats


def _run(obj: VerifiedObject, body: IO[bytes]) -> StepResult:
    from PIL import Image, ImageOps, UnidentifiedImageError

    formats = _decoders(obj)
    try:
        with Image.open(body, formats=formats) as probe:
            probe.verify()  # the checks a format carries (PNG: every chunk's CRC) without decoding
        body.seek(0)
        with Image.open(body, formats=formats) as img:
            width, height = img.size
            fmt = img.format
            if _cut_short(fmt, body):
                raise Rejected("corrupt-image", f"the {fmt} file is truncated (it lacks its final bytes)")
            frames = _bounded(img)
            img.load()  # decodes every byte of the first frame: a truncated or corrupt file fails here
            if frames > 1:
                img.seek(frames - 1)  # animations: the last frame must decode too (a cut-off GIF fails here)
                img.load()
                _within_budget(img, frames)  # a later frame may have grown the canvas
                img.seek(0)
                img.load()
            thumb = ImageOps.exif_transpose(img)
            if thumb.mode.startswith("I;16"):
                # 16-bit greyscale: Pillow cannot shrink it by reduction; its top 8 bits as grey
                thumb = thumb.convert("I").point(lambda value: value * (1 / 256)).convert("L")
            thumb.thumbnail(THUMBNAIL_BOX)
            if thumb.mode not in ("RGB", "RGBA"):
                has_alpha = "A" in thumb.getbands() or "transparency" in thumb.info
                thumb = thumb.convert("RGBA" if has_alpha else "RGB")
            # a fresh image from pixel data only: EXIF (GPS included), XMP and ICC text are not carried over
            clean = Image.frombytes(thumb.mode, thumb.size, thumb.tobytes())
            out = io.BytesIO()
            clean.save(out, format="WEBP", quality=80)
    except Rejected:
        raise
    except UnidentifiedImageError as exc:
        raise Rejected("corrupt-image", "the bytes are not an image that can be decoded") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # the decoder's words may quote the file's bytes: only their kind goes into the record
        raise Rejected("corrupt-image", f"the image cannot be decoded ({type(exc).__name__})") from exc
    return StepResult(
        fields={
            "width": width,
            "height": height,
            "format": fmt,
            "thumbnail": {
                "key": obj.derived_key(THUMBNAIL_NAME),
                "width": clean.width,
                "height": clean.height,
                "contentType": "image/webp",
            },
        },
        derived=[Derived(THUMBNAIL_NAME, out.getvalue(), "image/webp")],
    )
