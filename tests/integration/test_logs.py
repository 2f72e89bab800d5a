"""Logs never hold a token, a presigned URL or a signed policy, even at DEBUG."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from tests.integration.conftest import Api, png, post_to_s3


def test_issuing_and_reading_uploads_logs_no_secret(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload import wiring
    from directupload.observability import logger

    monkeypatch.setenv("AUTH_MODE", "jwt")
    wiring.reset()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    previous = logger.log_level
    logger.setLevel("DEBUG")
    token = ".".join(["eyJhbGciOiJSUzI1NiJ9", "eyJzdWIiOiJhbGljZSJ9", "c2VjcmV0LXNpZ25hdHVyZQ"])
    try:
        api = Api(claims={"sub": "alice"})
        data = png()
        status, issued, _ = api.call(
            "POST",
            "/uploads",
            {"profile": "avatar", "filename": "a.png", "contentType": "image/png", "size": len(data)},
            headers={"authorization": f"Bearer {token}"},
        )
        assert status == 201
        post_to_s3(issued, data)
        api.call("GET", f"/uploads/{issued['uploadId']}", headers={"authorization": f"Bearer {token}"})
    finally:
        logger.removeHandler(handler)  # type: ignore[attr-defined]  # powertools passes it to logging
        logger.setLevel(previous)
    logs = stream.getvalue()
    assert "upload issued" in logs  # the capture works: the API logged
    for secret in (token, issued["fields"]["x-amz-signature"], issued["fields"]["policy"], "X-Amz-Signature"):
        assert secret not in logs
