"""The demo pages in real headless Chromium against the local stack, as a person uses them.

The plain page (client-demo/index.html) and the Uppy page (client-demo/uppy.html) find the API
through config.json, upload straight to the emulated S3 and show what processing found; the plain
page then lists the caller's uploads, to download or delete.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from directupload import problems
from directupload.models import FINAL_FOR_CLIENTS
from tests.conftest import ROOT, Stack, start_stack, stop_stack, wait_for_status
from tests.support.samples import png

pytestmark = pytest.mark.browser

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
FINAL = sorted(FINAL_FOR_CLIENTS)  # where the pages stop following an upload


# --- files a person might pick ---------------------------------------------------------------


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
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack as `make run` starts it, with auth off and a daily quota of 100 GiB: stock Uppy
    sends no size, so each of its uploads is charged the profile's ceiling (5 GiB for a video)
    until processing settles it, and this module's uploads overlap more than one user's would."""
    stack = start_stack(tmp_path_factory.mktemp("browser-stack"), "--parameter", f"QuotaDailyBytes={100 * 1024**3}")
    yield stack
    stop_stack(stack)


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


def sha256_in_page(page: Any, url: str) -> str:
    """The SHA-256 of what the page's own fetch() gets from `url` (so CORS must allow it)."""
    return str(
        page.evaluate(
            """async url => {
                const response = await fetch(url);
                if (!response.ok) throw new Error(`GET ${response.status}`);
                const digest = await crypto.subtle.digest("SHA-256", await response.arrayBuffer());
                return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, "0")).join("");
            }""",
            url,
        )
    )


def wait_until_loaded(page: Any, img: str) -> None:
    """Until the browser has decoded the image at selector `img` (a broken one has naturalWidth 0)."""
    page.wait_for_function(
        "img => { const el = document.querySelector(img); return el?.complete && el.naturalWidth > 0; }", arg=img
    )


def signed_href(page: Any, link: str) -> str:
    """The link's href, once the page has signed it."""
    page.wait_for_function("link => document.querySelector(link)?.href.startsWith('http')", arg=link)
    return str(page.get_attribute(link, "href"))


def issue_through_api(stack: Stack, filename: str) -> str:
    """An upload issued (PENDING) without sending its bytes: the quickest way to fill the list."""
    body: dict[str, Any] = {"profile": "file", "filename": filename, "contentType": "text/plain", "size": 5}
    response = requests.post(f"{stack.url}/uploads", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["uploadId"])


def upload_through_api(stack: Stack, filename: str, data: bytes, profile: str) -> dict[str, Any]:
    issued = requests.post(
        f"{stack.url}/uploads",
        json={"profile": profile, "filename": filename, "contentType": "image/png", "size": len(data)},
        timeout=10,
    ).json()
    sent = requests.post(issued["url"], data=issued["fields"], files={"file": (filename, data)}, timeout=30)
    assert sent.ok, sent.text
    return wait_for_status(stack.url, issued["uploadId"])


def listed_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#upload-rows tr", "rows => rows.map(r => r.dataset.uploadId)"))


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
    modules: list[str] = []
    page.on("request", lambda r: modules.append(r.url.removeprefix(local_stack.url)) if r.url.endswith(".js") else None)
    open_plain_page(page, local_stack)
    assert local_stack.url in page.inner_text("#api-info"), "the page must find the API through config.json"
    # the page speaks the API through the client package (client-demo/js), as served, no bundle
    assert "/js/src/index.js" in modules and "/js/src/multipart.js" in modules, modules

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


# --- the read side: a processed file, and "My uploads" -----------------------------------------


def test_plain_page_shows_a_processed_png_with_its_thumbnail_and_a_download_link(
    page: Any, local_stack: Stack, tmp_path: Path
) -> None:
    # Given a real PNG
    data = png(300, 200)
    downloads: list[str] = []
    page.on("request", lambda r: downloads.append(r.url) if "/download" in r.url else None)
    open_plain_page(page, local_stack)

    # When a person uploads it and it is processed
    upload_on_plain_page(page, on_disk(tmp_path, "sunset.png", data), "avatar")
    assert final_status(page) == "PROCESSED", page.inner_text("main")
    upload_id = page.inner_text("#result-id")
    record = requests.get(f"{local_stack.url}/uploads/{upload_id}", timeout=10).json()

    # Then its thumbnail is on the page, and loads
    thumbnail = "#result-file img.thumbnail"
    wait_until_loaded(page, thumbnail)
    assert page.get_attribute(thumbnail, "alt") == "Thumbnail of sunset.png"
    # and its Download link gives the very bytes the record's SHA-256 names
    link = "#result-file a.download"
    assert sha256_in_page(page, signed_href(page, link)) == record["sha256"] == sha256(data)
    assert page.locator("#result").get_by_role("link", name="Download sunset.png").is_visible()

    # and "My uploads", refreshed when the upload finished, lists it with its own thumbnail and link
    row = f'#upload-rows tr[data-upload-id="{upload_id}"]'
    page.wait_for_selector(row)
    assert page.get_attribute(row, "data-status") == "PROCESSED"
    assert page.inner_text(f"{row} td.name") == "sunset.png"
    assert page.inner_text(f"{row} td.profile") == "avatar"
    assert page.get_attribute(f"{row} td.size", "title") == f"{len(data)} bytes"
    wait_until_loaded(page, f"{row} img.thumbnail")
    assert sha256_in_page(page, signed_href(page, f"{row} a.download")) == sha256(data)
    assert page.is_hidden("#error") and page.is_hidden("#uploads-error")
    page.screenshot(path=str(tmp_path / "processed-upload.png"), full_page=True)

    # When the Download link is clicked
    downloads.clear()
    with page.context.expect_page() as opened:
        page.click(link)
    tab = opened.value
    tab.wait_for_load_state()

    # Then the page signed a fresh URL, and the image opened in a new tab
    assert downloads == [f"{local_stack.url}/uploads/{upload_id}/download"]
    assert tab.evaluate("document.images[0]?.naturalWidth") == 300


def test_my_uploads_deletes_an_upload(page: Any, local_stack: Stack) -> None:
    # Given a processed PNG
    view = upload_through_api(local_stack, "old-photo.png", png(40, 30), "avatar")
    assert view["status"] == "PROCESSED", view
    open_plain_page(page, local_stack)
    row = f'#upload-rows tr[data-upload-id="{view["uploadId"]}"]'
    assert page.get_attribute(row, "data-status") == "PROCESSED"

    # When its Delete button is pressed
    page.get_by_role("button", name="Delete old-photo.png").click()

    # Then it leaves the list, the page says so, and the API has deleted it and its file
    page.wait_for_selector(row, state="detached")
    assert page.inner_text("#uploads-status").startswith("old-photo.png: deleted.")
    assert page.is_hidden("#uploads-error")
    assert requests.get(f"{local_stack.url}/uploads/{view['uploadId']}", timeout=10).json()["status"] == "DELETED"
    assert requests.get(f"{local_stack.url}/uploads/{view['uploadId']}/download", timeout=10).status_code == 409


def test_my_uploads_shows_the_problem_when_the_api_refuses_a_delete(page: Any, local_stack: Stack) -> None:
    # Given an upload, and an API that answers its DELETE with 409 (as it does while the upload
    # is being processed: too brief a moment to catch for real)
    upload_id = issue_through_api(local_stack, "busy.txt")
    problem = problems.CONFLICT.problem("the upload is UPLOADED; it can be deleted once processing is over")

    def refuse_delete(route: Any) -> None:
        if route.request.method == "DELETE":
            route.fulfill(status=409, content_type="application/problem+json", body=json.dumps(problem))
        else:
            route.continue_()

    page.route(f"{local_stack.url}/uploads/{upload_id}", refuse_delete)
    open_plain_page(page, local_stack)

    # When its Delete button is pressed
    page.get_by_role("button", name="Delete busy.txt").click()

    # Then the problem's title and detail are shown, and the upload stays listed, deletable later
    page.wait_for_selector("#uploads-error:not([hidden])")
    assert page.inner_text("#uploads-error-title") == problem["title"]
    assert page.inner_text("#uploads-error-detail") == problem["detail"]
    assert page.get_by_role("button", name="Delete busy.txt").is_enabled()
    assert listed_ids(page).count(upload_id) == 1


def test_my_uploads_pages_with_more(page: Any, local_stack: Stack) -> None:
    # Given more uploads than one page of the list (ten)
    mine = [issue_through_api(local_stack, f"page-{n:02}.txt") for n in range(12)]
    newest_first = mine[::-1]

    # When the page opens
    open_plain_page(page, local_stack)

    # Then it lists the ten newest, newest first, and offers more
    assert listed_ids(page) == newest_first[:10]
    assert page.is_visible("#uploads-more")
    assert page.inner_text("#upload-rows tr >> nth=0 >> td.status") == "PENDING"

    # When More is pressed
    page.click("#uploads-more")
    page.wait_for_function("() => document.querySelectorAll('#upload-rows tr').length > 10")

    # Then the next page follows on: the other two, then older ones, none twice
    shown = listed_ids(page)
    assert shown[:12] == newest_first
    assert len(shown) == len(set(shown))


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
    """The row says PROCESSED with the bytes' SHA-256, and links the file: those very bytes."""
    row = f'#outcome-rows tr[data-file-name="{name}"]'
    assert page.get_attribute(row, "data-status") == "PROCESSED", page.inner_text(row)
    assert page.get_attribute(f"{row} td.sha", "data-sha256") == sha256(data)
    href = signed_href(page, f"{row} a.download")
    assert page.get_by_role("link", name=f"Download {name}").is_visible()
    downloaded = requests.get(href, timeout=60)
    assert downloaded.ok and sha256(downloaded.content) == sha256(data)


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
    # and a click on a video's Download link downloads it (a video is never shown inline)
    with page.expect_download() as saved:
        page.click('#outcome-rows tr[data-file-name="small.mp4"] a.download')
    assert sha256(Path(saved.value.path()).read_bytes()) == sha256(files["small.mp4"])
    assert saved.value.suggested_filename == "small.mp4"
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

    # Then it is processed, shown and listed, and every API call carried the bearer token
    assert final_status(page) == "PROCESSED", page.inner_text("main")
    assert page.inner_text("#result-sha256") == sha256(data)
    wait_until_loaded(page, "#result-file img.thumbnail")
    page.wait_for_selector(f'#upload-rows tr[data-upload-id="{page.inner_text("#result-id")}"]')
    assert any("/download" in r.url for r in api_calls) and any("/uploads?" in r.url for r in api_calls)
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


def test_stock_uppy_with_only_the_profile_uploads_a_small_image_and_a_video_to_processed(
    page: Any, local_stack: Stack, tmp_path: Path
) -> None:
    require_uppy_bundle()
    # Given the page in docs/clients.md (Uppy): stock Uppy 6, companionEndpoint, no meta but the profile
    files = [("avatar", "tiny.png", png(12, 9)), ("video", "clip.mp4", mp4(300 * 1024))]
    for profile, name, data in files:
        page.goto(f"{local_stack.url}/uppy-minimal.html?profile={profile}")
        page.wait_for_selector("body[data-ready=true]")

        # When a file is added and uploaded, with no size anywhere in the page's code
        page.set_input_files(".uppy-Dashboard-input >> nth=0", [str(on_disk(tmp_path, name, data))])
        page.click(".uppy-StatusBar-actionBtn--upload")
        page.wait_for_function("window.uploaded.length === 1", timeout=60_000)
        upload_id = page.evaluate("window.uploaded[0]")

        # Then it reaches PROCESSED with its real size and the SHA-256 of its bytes
        record = wait_for_status(local_stack.url, upload_id)
        assert (record["status"], record["profile"]) == ("PROCESSED", profile), record
        assert record["size"] == len(data) and record["sha256"] == sha256(data)
