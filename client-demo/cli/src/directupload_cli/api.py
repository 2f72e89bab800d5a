"""The directupload HTTP API: where it is, how to sign in to the local stack, its routes, and its
problem+json refusals (RFC 9457) as RefusedError with the title and detail the server wrote."""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import requests

from directupload_cli import __version__
from directupload_cli.errors import NetworkError, RefusedError, UsageError
from directupload_cli.output import console
from directupload_cli.state import UPLOAD_ID

API_TIMEOUT = (5, 30)
S3_TIMEOUT = (10, 120)
# Where `make run` (the local stack) and `make outputs` (a deployed stack) say the API is, looked for
# in the current directory and its parents: the CLI works from anywhere in a checkout.
DISCOVERY_FILES = ((Path(".local") / "stack.json", "apiUrl"), (Path("client-demo") / "config.json", "apiBaseUrl"))


def discover_api(explicit: str | None) -> str:
    """--api, $DIRECTUPLOAD_API, .local/stack.json, client-demo/config.json (here or above)."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("DIRECTUPLOAD_API"):
        return os.environ["DIRECTUPLOAD_API"].rstrip("/")
    here = Path.cwd()
    for relative, name in DISCOVERY_FILES:
        for directory in (here, *here.parents):
            try:
                url = json.loads((directory / relative).read_text()).get(name)
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(url, str) and url:
                return url.rstrip("/")
    searched = " or ".join(str(relative) for relative, _ in DISCOVERY_FILES)
    raise UsageError(
        f"cannot tell where the API is (tried --api, $DIRECTUPLOAD_API, {searched} in {here} and its parents)",
        hint="start the local stack (make run), or pass --api URL",
    )


def local_token(base_url: str) -> str | None:
    """Against the local stack with auth on, a token from its /local/token, as the demo page signs in
    (user $DIRECTUPLOAD_USER, default the demo page's). Anything else: None."""
    try:
        config = requests.get(f"{base_url}/config.json", timeout=API_TIMEOUT).json()
        if not isinstance(config, dict) or config.get("stage") != "local" or config.get("auth") != "jwt":
            return None
        user = os.environ.get("DIRECTUPLOAD_USER", "demo-user")
        reply = requests.post(f"{base_url}/local/token", json={"user": user}, timeout=API_TIMEOUT)
        token = reply.json().get("token") if reply.ok else None
    except (requests.RequestException, ValueError):
        return None
    if isinstance(token, str) and token:
        console.print(f"local stack: signed in as {user}")
        return token
    return None


class Api:
    """The JSON routes, one requests session per thread (the part workers share the client)."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.headers = {"Accept": "application/json", "User-Agent": f"directupload-cli/{__version__}"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, path: str, body: Any = None, *, retries: int = 0) -> Any:
        """One API request; ``retries`` > 0 only for requests that are safe to repeat."""
        url = self.base_url + path
        for attempt in range(retries + 1):
            try:
                reply = self.session.request(method, url, json=body, headers=self.headers, timeout=API_TIMEOUT)
            except requests.RequestException as exc:
                if attempt < retries:
                    time.sleep(backoff(attempt))
                    continue
                raise NetworkError(
                    f"cannot reach the API at {self.base_url}: {describe_network_error(exc)}",
                    hint="is it running? --api, $DIRECTUPLOAD_API",
                ) from None
            if (reply.status_code >= 500 or reply.status_code == 429) and attempt < retries:
                time.sleep(retry_after(reply) or backoff(attempt))
                continue
            if reply.ok:
                try:
                    return reply.json() if reply.content else {}
                except ValueError:
                    raise RefusedError(
                        f"{method} {path}: the API answered {reply.status_code} without JSON", reply.status_code
                    ) from None
            raise api_refusal(method, path, reply)
        raise AssertionError("unreachable")

    # the routes
    def profiles(self) -> Any:
        """GET /profiles (public): what each profile accepts, as the server validated it."""
        return self.call("GET", "/profiles", retries=2)

    def issue(self, body: dict[str, Any]) -> dict[str, Any]:
        issued = dict(self.call("POST", "/uploads", body))
        upload_id = issued.get("uploadId")
        if not isinstance(upload_id, str) or not UPLOAD_ID.fullmatch(upload_id):
            # it names the state file and the routes of what follows: nothing else is one
            raise RefusedError(f"the API answered with an upload id that is not one: {str(upload_id)[:80]!r}")
        return issued

    def get(self, upload_id: str) -> dict[str, Any]:
        return dict(self.call("GET", upload_path(upload_id), retries=3))

    def sign(self, upload_id: str, numbers: list[int], checksums: dict[int, str] | None = None) -> list[dict[str, Any]]:
        """Part URLs; with ``checksums`` (part number -> base64 SHA-256) each signs its part's
        checksum, so S3 refuses bytes that do not hash to it."""
        body: dict[str, Any] = {"partNumbers": numbers}
        if checksums is not None:
            body = {"parts": [{"partNumber": n, "checksumSha256": checksums[n]} for n in numbers]}
        return list(self.call("POST", f"{upload_path(upload_id)}/parts", body, retries=3)["parts"])

    def parts(self, upload_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"{upload_path(upload_id)}/parts", retries=3)["parts"])

    def complete(self, upload_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        # safe to repeat: completing again answers the same record
        return dict(self.call("POST", f"{upload_path(upload_id)}/complete", {"parts": parts}, retries=3))

    def download(self, upload_id: str, variant: str | None) -> dict[str, Any]:
        query = "?" + urlencode({"variant": variant}) if variant else ""
        return dict(self.call("GET", f"{upload_path(upload_id)}/download{query}", retries=3))

    def uploads(self, **query: str | int | None) -> dict[str, Any]:
        """One page of the caller's uploads, newest first."""
        given = {name: value for name, value in query.items() if value is not None}
        return dict(self.call("GET", "/uploads" + ("?" + urlencode(given) if given else ""), retries=3))

    def delete(self, upload_id: str) -> dict[str, Any]:
        # safe to repeat, the upload is gone either way: a deleted one answers the same, but a
        # cancelled one (what a pending upload becomes) is final, so a repeat deletes it
        return dict(self.call("DELETE", upload_path(upload_id), retries=3))


def upload_path(upload_id: str) -> str:
    """The route of one upload; the id is quoted, so whatever was typed stays one path segment."""
    return "/uploads/" + quote(upload_id, safe="")


def api_refusal(method: str, path: str, reply: requests.Response) -> RefusedError:
    try:
        problem = reply.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    title = problem.get("title") or reply.reason or "refused"
    detail = problem.get("detail") or reply.text[:200].strip()
    message = f"the API refused {method} {path}: {reply.status_code} {title}" + (f": {detail}" if detail else "")
    hint = None
    if reply.status_code == 401:
        hint = "pass a bearer token: --token or $DIRECTUPLOAD_TOKEN"
    elif reply.status_code == 429 and retry_after(reply):
        hint = f"try again in {retry_after(reply):.0f} s"
    elif problem.get("known"):
        hint = "known profiles: " + ", ".join(map(str, problem["known"]))
    elif isinstance(problem.get("variants"), list):
        hint = "its variants: " + (", ".join(map(str, problem["variants"])) or "none")
    return RefusedError(message, reply.status_code, hint, problem)


def s3_error(reply: requests.Response) -> str:
    """S3's XML error, as `Code: Message`."""
    code = re.search(r"<Code>([^<]*)</Code>", reply.text or "")
    text = re.search(r"<Message>([^<]*)</Message>", reply.text or "")
    if code:
        return f"{code.group(1)}: {text.group(1) if text else ''}".rstrip(": ")
    return f"HTTP {reply.status_code} {reply.reason or ''}".strip()


# the longest a server's Retry-After makes the CLI wait between two tries
MAX_RETRY_AFTER = 60.0


def retry_after(reply: requests.Response) -> float | None:
    value = reply.headers.get("Retry-After", "")
    if not (value.isascii() and value.isdigit()):
        return None
    return min(float(value[:6]), MAX_RETRY_AFTER)


def backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s, ... up to 20 s, with jitter so parallel retries spread out."""
    return float(min(20.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5))


def describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__
