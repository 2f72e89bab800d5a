"""The ``image`` step: dimensions, and a WebP thumbnail without the original's metadata."""

from __future__ import annotations

import io
from typing import Any

from directupload import keys
from directupload.errors import Rejected
from directupload.processing.steps import VerifiedObject
from directupload.storage import Storage

THUMBNAIL_BOX = (256, 256)
# Decompression-bomb guard: refuse images over 50 megapixels.
MAX_PIXELS = 50_000_000


def run(obj: VerifiedObject, storage: Storage) -> dict[str, Any]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(obj.read()) as img:
            width, height = img.size
            fmt = img.format
            img.load()  # decodes every byte: a truncated or corrupt file fails here
            thumb = ImageOps.exif_transpose(img)
            thumb.thumbnail(THUMBNAIL_BOX)
            if thumb.mode not in ("RGB", "RGBA"):
                thumb = thumb.convert("RGBA" if "A" in thumb.getbands() or "transparency" in thumb.info else "RGB")
            out = io.BytesIO()
            # a fresh image from pixel data only: EXIF (GPS included), XMP and ICC text are not carried over
            clean = Image.frombytes(thumb.mode, thumb.size, thumb.tobytes())
            clean.save(out, format="WEBP", quality=80)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise Rejected("corrupt-image", f"the image cannot be decoded: {exc}") from exc
    thumb_key = keys.derived_key(obj.record.upload_id, "thumbnail.webp")
    storage.put(thumb_key, out.getvalue(), "image/webp")
    return {
        "width": width,
        "height": height,
        "format": fmt,
        "thumbnail": {"key": thumb_key, "width": clean.width, "height": clean.height, "contentType": "image/webp"},
    }
