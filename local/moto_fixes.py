"""What the emulator must enforce and moto 5 does not, patched in where it serves requests.

- CopyObject's ``x-amz-copy-source-if-match``: S3 refuses the copy (412 PreconditionFailed)
  when the source is no longer that version. The processor promotes a verified object with
  exactly this condition, so a staging object written again after verification is never
  copied over the verified one. moto honours only ``if-none-match`` on copies.

Applied by the emulator process (local/emulator.py) and by the tests' in-process moto server.
"""

from __future__ import annotations

from typing import Any

_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from urllib.parse import unquote, urlparse

    from moto.s3.exceptions import PreconditionFailed
    from moto.s3.responses import S3Response

    original = S3Response.copy_object

    def copy_object(self: S3Response) -> Any:
        wanted = self.headers.get("x-amz-copy-source-if-match")
        if wanted:
            source = self.headers.get("x-amz-copy-source")
            if isinstance(source, bytes):
                source = source.decode("utf-8")
            bucket, key = unquote(urlparse(source).path).lstrip("/").split("/", 1)
            current = self.backend.get_object(bucket, key)
            if current is None or current.etag.strip('"') != wanted.strip('"'):
                raise PreconditionFailed(failed_condition="x-amz-copy-source-If-Match")
        return original(self)

    S3Response.copy_object = copy_object  # type: ignore[method-assign]
    _APPLIED = True
