"""The demo pages in real headless Chromium against the local stack, as a person uses them.

The plain page (client-demo/index.html) and the Uppy page (client-demo/uppy.html) find the API
through config.json, upload straight to the emulated S3 and show what processing found.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, Stack, start_stack, stop_stack

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MiB = 1024 * 1024
FINAL = ("PROCESSED", "REJECTED", "FAILED", "CANCELLED", "EXPIRED")


# --- files a person might pick ---------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (36, 86, 211)).save(out, format="PNG")
    return out.getvalue()


def mp4(size: int) -> bytes:
    """A file the sniffer takes for video/mp4: an `ftyp` box (brand isom), then one `mdat` box."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"isom", 0x200) + b"isomiso2"
    mdat = struct.pack(">I4s", size - len(ftyp), b"mdat")
    body = bytes(range(256)) * ((size - len(ftyp) - len(mdat)) // 256 + 1)
    return (ftyp + mdat + body)[:size]


ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + bytes(200)
PE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(44) + b"\x80\x00\x00\x00" + bytes(64)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def jwt_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack as a bare `make run` starts it: bearer tokens required, /local/token hands them out."""
    stack = start_stack(tmp_path_factory.mktemp("jwt-stack"), auth="jwt")
    yield stack
    stop_stack(stack)


# --- browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Python playwright. Missing either is a failure, not a skip:
    `make test` installs both (requirements-dev.txt and apt's chromium)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python playwright is not installed: run `make setup` (it is in requirements-dev.txt)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; any uncaught script error on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def open_plain_page(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.url}/")
    page.wait_for_selector("body[data-ready=true]")


def on_disk(folder: Path, name: str, data: bytes) -> Path:
    """The file as a person has it. Chromium types it by its extension (.png: image/png), and a
    path is read by the browser itself (playwright's in-memory buffers crawl at tens of MiB)."""
    path = folder / name
    path.write_bytes(data)
    return path


def upload_on_plain_page(page: Any, file: Path, profile: str) -> None:
    page.set_input_files("#file", str(file))
    page.select_option("#profile", profile)
    page.click("#upload")


def final_status(page: Any, timeout: float = 30_000) -> str:
    page.wait_for_function(
        "final => final.includes(document.querySelector('#result-status')?.dataset.status)"
        " || !document.querySelector('#error').hidden",
        arg=list(FINAL),
        timeout=timeout,
    )
    return str(page.inner_text("#result-status"))


# --- the plain page -------------------------------------------------------------------------


def test_plain_page_uploads_a_png_and_shows_what_processing_found(
    page: Any, local_stack: Stack, tmp_path: Path
) -> None:
    # Given a real PNG
    data = png(64, 48)
    open_plain_page(page, local_stack)
    assert local_stack.url in page.inner_text("#api-info"), "the page must find the API through config.json"

    # When a person uploads it as an avatar
    upload_on_plain_page(page, on_disk(tmp_path, "cat.png", data), "avatar")

    # Then the page shows it processed, with the bytes' SHA-256, size, sniffed type and dimensions
    assert final_status(page) == "PROCESSED", page.inner_text("main")
    assert page.inner_text("#result-sha256") == sha256(data)
    assert f"({len(data)} bytes)" in page.inner_text("#result-size")
    assert page.inner_text("#result-type") == "image/png"
    assert page.inner_text("#result-dimensions") == "64 \N{MULTIPLICATION SIGN} 48"
    assert page.get_attribute("#progress", "value") == "100"
    assert page.is_hidden("#error")
    assert "processed" in page.inner_text("#status").lower()  # the aria-live region says so
    page.screenshot(path=str(tmp_path / "plain-page.png"), full_page=True)


def test_plain_page_uploads_a_large_video_in_parts(page: Any, local_stack: Stack, tmp_path: Path) -> None:
    # Given a video over the video profile's 16 MiB multipart threshold
    data = mp4(33 * MiB + 17)
    part_puts: list[str] = []
    page.on("request", lambda r: part_puts.append(r.url) if r.method == "PUT" and "partNumber=" in r.url else None)
    open_plain_page(page, local_stack)

    # When it is uploaded
    upload_on_plain_page(page, on_disk(tmp_path, "talk.mp4", data), "video")

    # Then its three parts went straight to S3 and the whole file was processed
    assert final_status(page, timeout=60_000) == "PROCESSED", page.inner_text("main")
    assert len(part_puts) == 3, part_puts
    assert page.inner_text("#result-sha256") == sha256(data)
    assert page.inner_text("#result-type") == "video/mp4"


@pytest.mark.parametrize(("kind", "header"), [("elf", ELF_HEADER), ("pe", PE_HEADER)])
def test_plain_page_shows_an_executable_named_png_rejected(
    page: Any, local_stack: Stack, tmp_path: Path, kind: str, header: bytes
) -> None:
    # Given an executable dressed as a PNG: .png name, so the browser declares image/png
    issued: list[Any] = []
    page.on("request", lambda r: issued.append(r.post_data_json) if r.url == f"{local_stack.url}/uploads" else None)
    open_plain_page(page, local_stack)

    # When it is uploaded as an avatar
    upload_on_plain_page(page, on_disk(tmp_path, f"holiday-{kind}.png", header), "avatar")

    # Then the API accepted the declaration, the bytes reached S3, processing rejected them,
    # and the page says why
    assert final_status(page) == "REJECTED", page.inner_text("main")
    assert [body["contentType"] for body in issued] == ["image/png"]
    assert "executable" in page.inner_text("#result-error")
    assert page.inner_text("#result-sha256") == "\N{EN DASH}"  # nothing to show


def test_plain_page_shows_the_api_problem_when_the_file_is_too_large(
    page: Any, local_stack: Stack, tmp_path: Path
) -> None:
    # Given a 6 MiB file, over the avatar profile's 5 MiB
    open_plain_page(page, local_stack)

    # When it is uploaded as an avatar
    upload_on_plain_page(page, on_disk(tmp_path, "huge.png", png(8, 8) + bytes(6 * MiB)), "avatar")

    # Then the API's problem+json title and detail are on the page, and nothing was uploaded
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error-title") == "Upload too large"
    assert "avatar" in page.inner_text("#error-detail")
    assert page.get_attribute("#progress", "value") == "0"
    assert "failed" in page.inner_text("#status").lower()


# --- the Uppy page --------------------------------------------------------------------------


def require_uppy_bundle() -> None:
    bundle = ROOT / "client-demo" / "node_modules" / "uppy" / "dist" / "uppy.min.js"
    if not bundle.exists():
        pytest.fail(f"{bundle.relative_to(ROOT)} is missing: run `make demo-deps` (npm ci in client-demo/)")


def upload_with_uppy(page: Any, stack: Stack, folder: Path, profile: str, files: dict[str, bytes]) -> list[Any]:
    """Add `files` (name -> bytes, all video/mp4) to the Dashboard, press Upload, wait until each
    row of the page's table is final. Returns the requests the page made to the API's /s3/ routes."""
    s3_requests: list[Any] = []
    page.on("request", lambda r: s3_requests.append(r) if f"{stack.url}/s3/" in r.url else None)
    page.goto(f"{stack.url}/uppy.html")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#profile", profile)
    page.set_input_files(
        ".uppy-Dashboard-input >> nth=0",
        [str(on_disk(folder, name, data)) for name, data in files.items()],
    )
    page.click(".uppy-StatusBar-actionBtn--upload")
    for name in files:
        row = f'#outcome-rows tr[data-file-name="{name}"]'
        try:
            page.wait_for_function(
                "([row, final]) => final.includes(document.querySelector(row)?.dataset.status)",
                arg=[row, list(FINAL)],
                timeout=60_000,
            )
        except Exception as exc:
            routes = [f"{r.method} {r.url}" for r in s3_requests]
            raise AssertionError(
                f"{name} not final on the page:\n{page.inner_text('#outcomes')}\n"
                f"error box: {page.inner_text('#error') if page.is_visible('#error') else '-'}\n"
                f"/s3/ requests: {routes}"
            ) from exc
    return s3_requests


def assert_processed_row(page: Any, name: str, data: bytes) -> None:
    row = f'#outcome-rows tr[data-file-name="{name}"]'
    assert page.get_attribute(row, "data-status") == "PROCESSED", page.inner_text(row)
    assert page.get_attribute(f"{row} td.sha", "data-sha256") == sha256(data)


def test_uppy_page_uploads_a_small_and_a_multipart_file_to_processed(
    page: Any, local_stack: Stack, tmp_path: Path
) -> None:
    require_uppy_bundle()
    # Given two videos: one small (a single presigned POST), one over the video profile's
    # 16 MiB multipart threshold
    files = {"small.mp4": mp4(96 * 1024), "large.mp4": mp4(17 * MiB + 4321)}

    # When both are added to Uppy's Dashboard and uploaded
    s3_requests = upload_with_uppy(page, local_stack, tmp_path, "video", files)

    # Then each reaches PROCESSED on the page, with the SHA-256 of its bytes
    for name, data in files.items():
        assert_processed_row(page, name, data)
    # and Uppy used both of its companion paths: a presigned POST and a multipart upload in parts
    routes = [f"{r.method} {r.url.split('?')[0].removeprefix(local_stack.url)}" for r in s3_requests]
    assert "GET /s3/params" in routes
    assert "POST /s3/multipart" in routes
    assert sum(1 for r in routes if r.startswith("GET /s3/multipart/") and r.count("/") == 4) == 2, routes
    assert any(r.startswith("POST /s3/multipart/") and r.endswith("/complete") for r in routes), routes
    page.screenshot(path=str(tmp_path / "uppy-page.png"), full_page=True)


@pytest.mark.slow
def test_uppy_page_uploads_a_120_mib_video_in_parts_to_processed(page: Any, local_stack: Stack, tmp_path: Path) -> None:
    require_uppy_bundle()
    # Given a 120 MiB video: eight 16 MiB parts
    files = {"keynote.mp4": mp4(120 * MiB)}

    # When Uppy uploads it
    s3_requests = upload_with_uppy(page, local_stack, tmp_path, "video", files)

    # Then it went multipart and reached PROCESSED with the SHA-256 of its bytes
    assert_processed_row(page, "keynote.mp4", files["keynote.mp4"])
    routes = [f"{r.method} {r.url.split('?')[0].removeprefix(local_stack.url)}" for r in s3_requests]
    assert "POST /s3/multipart" in routes and "GET /s3/params" not in routes
    assert sum(1 for r in routes if r.startswith("GET /s3/multipart/") and r.count("/") == 4) == 8, routes


# --- with auth on, as a bare `make run` ------------------------------------------------------


def test_plain_page_signs_in_and_sends_the_token_when_auth_is_jwt(page: Any, jwt_stack: Stack, tmp_path: Path) -> None:
    # Given the stack with bearer tokens required (the API refuses a caller without one)
    assert requests.get(f"{jwt_stack.url}/uploads/{'0' * 32}", timeout=10).status_code == 401
    api_calls: list[Any] = []
    page.on("request", lambda r: api_calls.append(r) if r.url.startswith(f"{jwt_stack.url}/uploads") else None)
    open_plain_page(page, jwt_stack)
    assert "auth jwt" in page.inner_text("#api-info")
    assert "signed in as" in page.inner_text("#api-info")

    # When a PNG is uploaded
    data = png(20, 10)
    upload_on_plain_page(page, on_disk(tmp_path, "dot.png", data), "avatar")

    # Then it is processed, and every API call carried the bearer token
    assert final_status(page) == "PROCESSED", page.inner_text("main")
    assert page.inner_text("#result-sha256") == sha256(data)
    assert api_calls
    assert all((r.headers.get("authorization") or "").startswith("Bearer ") for r in api_calls)


def test_uppy_page_sends_the_token_to_the_companion_routes_when_auth_is_jwt(
    page: Any, jwt_stack: Stack, tmp_path: Path
) -> None:
    require_uppy_bundle()
    # Given the stack with bearer tokens required, and a small video
    data = mp4(64 * 1024)

    # When Uppy uploads it
    s3_requests = upload_with_uppy(page, jwt_stack, tmp_path, "video", {"clip.mp4": data})

    # Then it is processed: Uppy's companion requests went out with the page's token
    assert_processed_row(page, "clip.mp4", data)
    assert s3_requests
    assert all((r.headers.get("authorization") or "").startswith("Bearer ") for r in s3_requests)
