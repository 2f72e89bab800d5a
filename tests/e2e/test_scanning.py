"""Malware scanning on the local stack, as a user runs it: real uploads over HTTP, a real ClamAV
scan of each staging object by the local scanner (GuardDuty's part), its verdict through the
default event bus and the template's rule to the real ProcessFunction."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Stack, emulator_client, start_stack, stop_stack, wait_for_status

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SCAN_TIMEOUT = 5  # the file profile's here: a silent scanner is noticed within seconds


@pytest.fixture(scope="module")
def scanning_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    from directupload.profiles import BUILTIN_PROFILES

    profiles = {name: p.model_dump(by_alias=True, exclude={"name"}) for name, p in BUILTIN_PROFILES.items()}
    profiles["file"]["scanTimeoutSeconds"] = SCAN_TIMEOUT
    state = tmp_path_factory.mktemp("scanning")
    switch = state / "scanner-down"
    stack = start_stack(
        state / "stack",
        "--parameter",
        f"ProfilesJson={json.dumps(profiles)}",
        env={"LOCAL_SCANNER_SWITCH": str(switch)},
    )
    yield stack, switch
    stop_stack(stack)


def send(stack: Stack, data: bytes, filename: str) -> dict[str, Any]:
    issued = requests.post(
        f"{stack.url}/uploads",
        json={"profile": "file", "filename": filename, "contentType": "text/plain", "size": len(data)},
        timeout=10,
    ).json()
    files = {"file": (filename, data, "text/plain")}
    assert requests.post(issued["url"], data=issued["fields"], files=files, timeout=10).status_code == 204
    return issued


def events_of(stack: Stack, upload_id: str, at_least: int = 1, timeout: float = 30) -> list[str]:
    """The upload's events on the bus, once ``at_least`` are there (the record changes first)."""
    deadline = time.monotonic() + timeout
    while True:
        kinds = [e["detail-type"] for e in stack.events() if e["detail"]["uploadId"] == upload_id]
        if len(kinds) >= at_least or time.monotonic() > deadline:
            return kinds
        time.sleep(0.1)


def test_the_eicar_test_file_is_caught_by_clamav_and_a_clean_file_goes_through(
    scanning_stack: tuple[Stack, Path],
) -> None:
    stack, _ = scanning_stack
    clean = send(stack, b"minutes of the meeting\n", "minutes.txt")
    infected = send(stack, EICAR, "eicar.txt")

    processed = wait_for_status(stack.url, clean["uploadId"], timeout=60)
    rejected = wait_for_status(stack.url, infected["uploadId"], timeout=60)

    assert processed["status"] == "PROCESSED"
    download = requests.get(f"{stack.url}/uploads/{clean['uploadId']}/download", timeout=10).json()
    assert requests.get(download["url"], timeout=10).content == b"minutes of the meeting\n"
    assert rejected["status"] == "REJECTED"
    assert rejected["error"]["code"] == "malware" and rejected["error"]["threats"] == ["Test.EICAR.Body.UNOFFICIAL"]
    assert requests.get(f"{stack.url}/uploads/{infected['uploadId']}/download", timeout=10).status_code == 409
    s3 = emulator_client(stack)
    assert infected["key"].startswith("incoming/scan/")  # staged where the scanner looks
    quarantined = f"quarantine/{infected['uploadId']}/{infected['key'].rsplit('/', 1)[1]}"
    assert s3.get_object(Bucket=stack.info["bucket"], Key=quarantined)["Body"].read() == EICAR
    tags = s3.get_object_tagging(Bucket=stack.info["bucket"], Key=quarantined)["TagSet"]
    assert {"Key": "GuardDutyMalwareScanStatus", "Value": "THREATS_FOUND"} in tags
    assert events_of(stack, clean["uploadId"]) == ["Upload Processed"]
    assert events_of(stack, infected["uploadId"]) == ["Upload Rejected"]


def test_a_scanner_that_is_down_gets_uploads_rejected_never_served_and_then_recovers(
    scanning_stack: tuple[Stack, Path],
) -> None:
    stack, switch = scanning_stack
    switch.touch()
    try:
        unscanned = send(stack, b"sent while the scanner was down\n", "late.txt")
        rejected = wait_for_status(stack.url, unscanned["uploadId"], timeout=60)
    finally:
        switch.unlink()

    assert (rejected["status"], rejected["error"]["code"]) == ("REJECTED", "scan-timeout")
    assert events_of(stack, unscanned["uploadId"]) == ["Upload Rejected"]

    # back up: the next upload goes through, and the old one's late scan changes nothing
    again = send(stack, b"sent once it was back\n", "again.txt")
    assert wait_for_status(stack.url, again["uploadId"], timeout=60)["status"] == "PROCESSED"
    assert requests.get(f"{stack.url}/uploads/{unscanned['uploadId']}", timeout=10).json()["status"] == "REJECTED"
    assert events_of(stack, unscanned["uploadId"]) == ["Upload Rejected"]
