"""CloudFront signed download URLs (functions/directupload/cdn.py), checked the way CloudFront
checks them: the canned policy rebuilt from the URL as the developer guide documents it, and the
signature verified with the public key.

https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-creating-signed-url-canned-policy.html
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
import pytest
from botocore.stub import Stubber
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from directupload import downloads, wiring
from directupload.cdn import CloudFrontUrlSigner, SecretPrivateKey, object_url
from directupload.errors import ConfigError
from directupload.models import Status, UploadRecord
from directupload.uploads import UploadService
from tests.records import upload_record

DOMAIN = "d111111abcdef8.cloudfront.net"
KEY_PAIR_ID = "K2JCJMDEHXQW5F"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:directupload-cloudfront-AbCdEf"
EXPIRES_AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
UPLOAD_ID = "0" * 31 + "1"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _signer(key: rsa.RSAPrivateKey) -> CloudFrontUrlSigner:
    return CloudFrontUrlSigner(domain=DOMAIN, key_pair_id=KEY_PAIR_ID, private_key=lambda: key)


def _canned_policy(resource: str, expires: int) -> bytes:
    # As CloudFront documents it: no white space, these keys in this order.
    return (
        '{"Statement":[{"Resource":"' + resource + '","Condition":{"DateLessThan":{"AWS:EpochTime":'
        f"{expires}" + "}}}]}"
    ).encode()


def _signature(url: str) -> bytes:
    """The URL's Signature parameter, from CloudFront's URL-safe base64 (+ -> -, = -> _, / -> ~)."""
    value = dict(parse_qsl(urlsplit(url).query))["Signature"]
    return base64.b64decode(value.replace("-", "+").replace("_", "=").replace("~", "/"))


def _verifies(public_key: rsa.RSAPublicKey, signature: bytes, policy: bytes) -> bool:
    try:
        public_key.verify(signature, policy, padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return True


def test_a_signed_url_names_the_object_its_pinned_headers_and_the_canned_policy(
    private_key: rsa.RSAPrivateKey,
) -> None:
    # Given
    key = f"files/{UPLOAD_ID}/report.pdf"
    disposition = downloads.disposition("report.pdf", "application/pdf", inline=False)

    # When
    url = _signer(private_key).sign(key, expires_at=EXPIRES_AT, content_type="application/pdf", disposition=disposition)

    # Then
    parts = urlsplit(url)
    params = parse_qsl(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", DOMAIN, f"/{key}")
    assert [name for name, _ in params] == [
        "response-content-type",
        "response-content-disposition",
        "Expires",
        "Signature",
        "Key-Pair-Id",
    ]
    values = dict(params)
    assert values["response-content-type"] == "application/pdf"
    assert values["response-content-disposition"] == disposition
    assert values["Expires"] == str(int(EXPIRES_AT.timestamp()))
    assert values["Key-Pair-Id"] == KEY_PAIR_ID


def test_the_signature_verifies_over_the_canned_policy_of_the_whole_url(private_key: rsa.RSAPrivateKey) -> None:
    # Given a signed URL
    url = _signer(private_key).sign(
        f"files/{UPLOAD_ID}/photo.png",
        expires_at=EXPIRES_AT,
        content_type="image/png",
        disposition=downloads.disposition("photo.png", "image/png", inline=True),
    )
    # the resource is the base URL with our own query string, before CloudFront's parameters
    resource = url.split("&Expires=", 1)[0]
    expires = int(dict(parse_qsl(urlsplit(url).query))["Expires"])

    # Then CloudFront's check passes ...
    assert _verifies(private_key.public_key(), _signature(url), _canned_policy(resource, expires))
    # ... and fails for the same URL with other headers or a later expiry: no holder changes them
    other_type = resource.replace("image%2Fpng", "text%2Fhtml")
    assert other_type != resource
    assert not _verifies(private_key.public_key(), _signature(url), _canned_policy(other_type, expires))
    assert not _verifies(private_key.public_key(), _signature(url), _canned_policy(resource, expires + 1))


def test_a_key_with_spaces_and_unicode_is_percent_encoded_once(private_key: rsa.RSAPrivateKey) -> None:
    # Given a key with what safe_filename keeps: spaces, brackets, plus, non-ASCII letters
    key = f"files/{UPLOAD_ID}/Résumé (final) + notes 東京.pdf"
    disposition = downloads.disposition("Résumé (final) + notes 東京.pdf", "application/pdf", inline=False)

    # When
    url = _signer(private_key).sign(key, expires_at=EXPIRES_AT, content_type="application/pdf", disposition=disposition)

    # Then the URL is ASCII, its path decodes to the key, and only unreserved characters and / are left as is
    path = urlsplit(url).path
    assert url.isascii() and " " not in url
    assert unquote(path) == f"/{key}"
    assert "%20" in path and "%28final%29" in path and "%2B" in path and "%C3%A9" in path
    assert dict(parse_qsl(urlsplit(url).query))["response-content-disposition"] == disposition


def test_the_unsigned_url_encodes_header_values_completely() -> None:
    url = object_url(DOMAIN, "derived/x/thumbnail.webp", content_type="image/webp", disposition='inline; a="b&c=d"')

    assert url == (
        f"https://{DOMAIN}/derived/x/thumbnail.webp"
        "?response-content-type=image%2Fwebp&response-content-disposition=inline%3B%20a%3D%22b%26c%3Dd%22"
    )


# --- the private key, from Secrets Manager ---------------------------------------------------------


def _secrets_client(fake_credentials: dict[str, str]) -> Any:
    return boto3.client("secretsmanager", region_name=fake_credentials["AWS_DEFAULT_REGION"])


def test_the_private_key_is_read_from_the_secret_once_on_first_use(
    private_key: rsa.RSAPrivateKey, fake_credentials: dict[str, str]
) -> None:
    # Given a client that answers GetSecretValue exactly once (a second call would fail)
    client = _secrets_client(fake_credentials)
    stubber = Stubber(client)
    stubber.add_response(
        "get_secret_value",
        {"ARN": SECRET_ARN, "Name": "directupload-cloudfront", "SecretString": _pem(private_key)},
        {"SecretId": SECRET_ARN},
    )
    built: list[str] = []

    def factory() -> Any:
        built.append("secretsmanager")
        return client

    with stubber:
        signer = CloudFrontUrlSigner(
            domain=DOMAIN, key_pair_id=KEY_PAIR_ID, private_key=SecretPrivateKey(SECRET_ARN, factory)
        )
        assert built == []  # nothing is fetched (no client built) before a download is signed

        # When two downloads are signed
        first, second = (
            signer.sign(f"files/{UPLOAD_ID}/{n}.txt", expires_at=EXPIRES_AT, content_type="text/plain", disposition="a")
            for n in ("a", "b")
        )

    # Then the secret was read once, and both signatures hold
    stubber.assert_no_pending_responses()
    assert built == ["secretsmanager"]
    for url in (first, second):
        resource = url.split("&Expires=", 1)[0]
        policy = _canned_policy(resource, int(EXPIRES_AT.timestamp()))
        assert _verifies(private_key.public_key(), _signature(url), policy)


@pytest.mark.parametrize(
    "secret_string",
    ["not a key", _pem(ec.generate_private_key(ec.SECP256R1()))],
    ids=["not-pem", "not-rsa"],
)
def test_a_secret_that_holds_no_rsa_private_key_is_a_config_error_that_does_not_echo_it(
    fake_credentials: dict[str, str], secret_string: str
) -> None:
    client = _secrets_client(fake_credentials)
    stubber = Stubber(client)
    stubber.add_response("get_secret_value", {"SecretString": secret_string}, {"SecretId": SECRET_ARN})

    with stubber, pytest.raises(ConfigError, match="CLOUDFRONT_PRIVATE_KEY_SECRET_ARN") as raised:
        SecretPrivateKey(SECRET_ARN, lambda: client)()

    assert secret_string not in str(raised.value)
    assert raised.value.__cause__ is None


# --- wiring: which URLs the download route hands out -----------------------------------------------

BASE_ENV = {
    "UPLOADS_TABLE": "t",
    "UPLOADS_BUCKET": "b",
    "EVENT_BUS_NAME": "e",
    "AUTH_MODE": "none",
}
CLOUDFRONT_ENV = {
    "DOWNLOAD_DOMAIN": DOMAIN,
    "CLOUDFRONT_KEY_PAIR_ID": KEY_PAIR_ID,
    "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN": SECRET_ARN,
}


@pytest.mark.parametrize("cloudfront", [True, False], ids=["cloudfront", "s3"])
def test_the_wiring_signs_with_cloudfront_only_when_the_settings_name_a_domain(
    monkeypatch: pytest.MonkeyPatch, fake_credentials: dict[str, str], cloudfront: bool
) -> None:
    for name, value in {**BASE_ENV, **(CLOUDFRONT_ENV if cloudfront else {})}.items():
        monkeypatch.setenv(name, value)
    for name in () if cloudfront else CLOUDFRONT_ENV:
        monkeypatch.delenv(name, raising=False)
    wiring.reset()
    try:
        signer = wiring.download_signer()
    finally:
        wiring.reset()

    if cloudfront:
        assert isinstance(signer, CloudFrontUrlSigner)
        assert (signer.domain, signer.key_pair_id) == (DOMAIN, KEY_PAIR_ID)
    else:
        assert signer is None


def test_half_a_cloudfront_configuration_names_what_is_missing() -> None:
    from directupload.config import Settings

    with pytest.raises(ConfigError, match="CLOUDFRONT_KEY_PAIR_ID, CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"):
        Settings.from_env({**BASE_ENV, "DOWNLOAD_DOMAIN": DOMAIN})


class _Store:
    def __init__(self, record: UploadRecord) -> None:
        self.record = record

    def get(self, upload_id: str) -> UploadRecord | None:
        return self.record if upload_id == self.record.upload_id else None


class _Storage:
    bucket = "b"

    def __init__(self) -> None:
        self.presigned: list[dict[str, Any]] = []

    def in_bucket(self, name: str | None) -> _Storage:
        assert name in (None, self.bucket)
        return self

    def presign_get(self, key: str, **kwargs: Any) -> str:
        self.presigned.append({"key": key, **kwargs})
        return f"https://b.s3.amazonaws.com/{key}?X-Amz-Signature=s3"


def _processed(now: datetime) -> UploadRecord:
    return upload_record(
        now=now,
        upload_id=UPLOAD_ID,
        status=Status.PROCESSED,
        profile="document",
        filename="report.pdf",
        key=f"incoming/{UPLOAD_ID}/report.pdf",
        content_type="application/pdf",
        size=10,
        expires_at=now,
        file_key=f"files/{UPLOAD_ID}/report.pdf",
        result={"contentType": "application/pdf"},
    )


@pytest.mark.parametrize("cloudfront", [True, False], ids=["cloudfront", "s3"])
def test_downloads_come_from_cloudfront_when_a_signer_is_wired_else_from_s3_as_before(
    private_key: rsa.RSAPrivateKey, cloudfront: bool
) -> None:
    # Given a processed upload
    now = datetime(2030, 1, 1, tzinfo=UTC)
    storage = _Storage()
    service = UploadService(
        profiles={},  # a profile no longer configured: the default lifetime
        store=_Store(_processed(now)),  # type: ignore[arg-type]  # a fake: the methods downloads call
        storage=storage,  # type: ignore[arg-type]  # a fake: the methods downloads call
        s3=None,
        download_signer=_signer(private_key) if cloudfront else None,
        clock=lambda: now,
    )

    # When
    download = service.download("alice", UPLOAD_ID)

    # Then
    expected_disposition = downloads.disposition("report.pdf", "application/pdf", inline=False)
    assert download.disposition == "attachment"
    if cloudfront:
        values = dict(parse_qsl(urlsplit(download.url).query))
        assert urlsplit(download.url).netloc == DOMAIN
        assert values["response-content-type"] == "application/pdf"
        assert values["response-content-disposition"] == expected_disposition
        assert int(values["Expires"]) == int(download.expires_at.timestamp())
        assert storage.presigned == []
    else:
        assert download.url.startswith("https://b.s3.amazonaws.com/")
        assert storage.presigned == [
            {
                "key": f"files/{UPLOAD_ID}/report.pdf",
                "expires_in": int((download.expires_at - now) / timedelta(seconds=1)),
                "content_type": "application/pdf",
                "disposition": expected_disposition,
            }
        ]
