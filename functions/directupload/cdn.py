"""Download URLs signed for CloudFront (DownloadDistribution=cloudfront in template.yaml).

A signed URL names the object and the two response headers S3 must set, exactly as a
presigned GET does: ``https://{domain}/{key}?response-content-type=…&response-content-disposition=…``
plus the canned-policy parameters (``Expires``, ``Signature``, ``Key-Pair-Id``). The canned
policy covers the whole URL, query string included, so no holder can change the headers. The
distribution forwards those two query strings to S3, which sets the headers from them on the
SigV4-signed request that origin access control sends.

The private key lives in Secrets Manager (a PEM as the secret string); it is read on the first
download of a container, never at import, and kept for the container's life. Neither the key
nor a signed URL is ever logged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from directupload.errors import ConfigError


def object_url(domain: str, key: str, *, content_type: str, disposition: str) -> str:
    """The unsigned URL of one object with its response overrides.

    Percent-encoded the way SigV4 encodes a canonical URI (everything but unreserved
    characters and the path's ``/``), so the path CloudFront forwards and signs is the key.
    """
    query = "&".join(
        f"{name}={quote(value, safe='')}"
        for name, value in (("response-content-type", content_type), ("response-content-disposition", disposition))
    )
    return f"https://{domain}/{quote(key, safe='/')}?{query}"


class SecretPrivateKey:
    """The RSA private key in a Secrets Manager secret, fetched once, on first use."""

    def __init__(self, secret_arn: str, client: Callable[[], Any]) -> None:
        self.secret_arn = secret_arn
        self._client = client  # a factory: no client is built before the first download
        self._lock = threading.Lock()
        self._key: RSAPrivateKey | None = None

    def __call__(self) -> RSAPrivateKey:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._load()
        return self._key

    def _load(self) -> RSAPrivateKey:
        reply = self._client().get_secret_value(SecretId=self.secret_arn)
        pem = reply.get("SecretString")
        if not pem:
            raise ConfigError("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: the secret has no SecretString (the key's PEM)")
        try:
            key = load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError):
            # no detail: the parser's message is not needed to fix it, the key never in a log
            raise ConfigError(
                "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: the secret is not an unencrypted PEM private key"
            ) from None
        if not isinstance(key, RSAPrivateKey):
            raise ConfigError("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: the key must be RSA (CloudFront signs with RSA-SHA1)")
        return key


class CloudFrontUrlSigner:
    """Signs download URLs of one distribution with one key pair (canned policy)."""

    def __init__(self, *, domain: str, key_pair_id: str, private_key: Callable[[], RSAPrivateKey]) -> None:
        self.domain = domain
        self.key_pair_id = key_pair_id
        self._private_key = private_key

    def _rsa_sha1(self, message: bytes) -> bytes:
        # What CloudFront checks a canned or custom policy's signature with.
        return self._private_key().sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303

    def sign(self, key: str, *, expires_at: datetime, content_type: str, disposition: str) -> str:
        url = object_url(self.domain, key, content_type=content_type, disposition=disposition)
        signer = CloudFrontSigner(self.key_pair_id, self._rsa_sha1)
        return str(signer.generate_presigned_url(url, date_less_than=expires_at))
