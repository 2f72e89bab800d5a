from __future__ import annotations

import json

import pytest

from directupload.config import Settings
from directupload.errors import ConfigError
from directupload.profiles import BUILTIN_PROFILES, MiB, load_profiles

BASE = {
    "UPLOADS_TABLE": "t",
    "UPLOADS_BUCKET": "b",
    "EVENT_BUS_NAME": "e",
    "AUTH_MODE": "jwt",
}


def test_settings_parse_from_the_environment() -> None:
    settings = Settings.from_env({**BASE, "QUOTA_MAX_PENDING": "3"})
    assert settings.uploads_bucket == "b" and settings.quota_max_pending == 3
    assert settings.profiles == BUILTIN_PROFILES


@pytest.mark.parametrize("missing", sorted(BASE))
def test_a_missing_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


def test_auth_is_never_off_by_accident() -> None:
    with pytest.raises(ConfigError, match="AUTH_MODE"):
        Settings.from_env({**BASE, "AUTH_MODE": "off"})


def test_custom_profiles_replace_the_built_in_ones() -> None:
    logo = {"contentTypes": ["image/svg+xml"], "maxSize": MiB, "allowActiveContent": True}
    profiles = load_profiles(json.dumps({"logo": logo}))
    assert list(profiles) == ["logo"]
    assert profiles["logo"].allows("image/svg+xml") and not profiles["logo"].allows("image/png")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "non-empty JSON object"),
        ('{"x": {"contentTypes": ["image/png"]}}', "maxSize"),
        (
            '{"x": {"contentTypes": ["image/png"], "maxSize": 10, "steps": ["verify", "virus"]}}',
            "unknown processing steps",
        ),
        ('{"x": {"contentTypes": ["image/png"], "maxSize": 10, "steps": ["image"]}}', "verify"),
        ('{"x": {"contentTypes": ["png"], "maxSize": 10}}', "type/subtype"),
        ('{"x": {"contentTypes": ["video/mp4"], "maxSize": 6000000000}}', "multipart"),
        ('{"x": {"contentTypes": ["video/mp4"], "maxSize": 10, "urlTtlSeconds": 86400}}', "urlTtlSeconds"),
        ('{"x": {"contentTypes": ["video/mp4"], "maxSize": 10, "sizeLimit": 3}}', "sizeLimit"),
    ],
)
def test_bad_profiles_fail_at_cold_start_with_a_clear_message(document: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_profiles(document)


def test_part_size_grows_so_ten_thousand_parts_hold_the_file() -> None:
    video = BUILTIN_PROFILES["video"]
    assert video.part_size_for(100 * MiB) == 16 * MiB
    big = 10_000 * 16 * MiB + 1
    part = video.part_size_for(big)
    assert part % MiB == 0 and part * 10_000 >= big


def test_a_profile_naming_active_content_must_say_it_accepts_it() -> None:
    with pytest.raises(ConfigError, match="allowActiveContent"):
        load_profiles(json.dumps({"logo": {"contentTypes": ["image/svg+xml"], "maxSize": 1024}}))


def test_the_configured_buckets_are_the_default_first_then_the_others() -> None:
    settings = Settings.from_env({**BASE, "UPLOADS_BUCKET": "a", "UPLOADS_BUCKETS": "a,c,b"})
    assert settings.buckets == ("a", "c", "b")
    assert Settings.from_env(BASE).buckets == ("b",)  # one bucket: UPLOADS_BUCKET alone


def test_a_profile_may_name_a_configured_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload.config import get_settings

    profiles = {"report": {"contentTypes": ["application/pdf"], "maxSize": MiB, "bucket": "reports"}}
    for name, value in {**BASE, "UPLOADS_BUCKETS": "b,reports", "PROFILES_JSON": json.dumps(profiles)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        assert get_settings().profiles["report"].bucket == "reports"
    finally:
        get_settings.cache_clear()


def test_a_profile_naming_an_unknown_bucket_fails_at_cold_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload.config import get_settings

    profiles = {"report": {"contentTypes": ["application/pdf"], "maxSize": MiB, "bucket": "someone-elses"}}
    for name, value in {**BASE, "UPLOADS_BUCKETS": "b,reports", "PROFILES_JSON": json.dumps(profiles)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"profile 'report' names the bucket 'someone-elses'.*\['b', 'reports'\]"):
            get_settings()
    finally:
        get_settings.cache_clear()
