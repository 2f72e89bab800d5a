"""The CLI's part signer without a network: a scripted API, senders as threads taking parts in
order. Every part is signed once, with its own checksum, in batches no larger than asked; a part
forgotten after S3's refusal is signed again; and the first batch is what the first PUTs need."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from directupload_cli.transfer import PartSigner


class ScriptedApi:
    """POST /uploads/{id}/parts as the API answers it, each request recorded."""

    def __init__(self, lifetime: timedelta = timedelta(minutes=15)) -> None:
        self.lifetime = lifetime
        self.requests: list[dict[int, str | None]] = []
        self.lock = threading.Lock()

    def sign(self, upload_id: str, numbers: list[int], checksums: dict[int, str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            self.requests.append({n: (checksums or {}).get(n) for n in numbers})
        expires = (datetime.now(UTC) + self.lifetime).isoformat()
        return [{"partNumber": n, "url": f"https://s3/{upload_id}/{n}", "expiresAt": expires} for n in numbers]


def send_all(signer: PartSigner, order: list[int], senders: int) -> dict[int, str]:
    """What the CLI's part workers do with the signer: take the next part, ask for its URL."""
    work: queue.Queue[int] = queue.Queue()
    for n in order:
        work.put(n)
    urls: dict[int, str] = {}

    def sender() -> None:
        while True:
            try:
                n = work.get_nowait()
            except queue.Empty:
                return
            urls[n] = signer.url(n).url

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    signer.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    signer.close()
    return urls


def test_every_part_is_signed_once_with_its_checksum_in_small_batches() -> None:
    api = ScriptedApi()
    order = list(range(1, 501))
    signer = PartSigner(api, "u1", order, batch=8, first=4, low=5, checksum_of=lambda n: f"sum-of-{n}")

    urls = send_all(signer, order, senders=4)

    assert urls == {n: f"https://s3/u1/{n}" for n in order}
    signed = [n for request in api.requests for n in request]
    assert sorted(signed) == order  # once each
    assert all(checksum == f"sum-of-{n}" for request in api.requests for n, checksum in request.items())
    assert list(api.requests[0]) == [1, 2, 3, 4]  # the first batch: what the first PUTs need
    assert all(len(request) <= 8 for request in api.requests)


def test_a_resumed_upload_signs_only_the_parts_it_sends() -> None:
    api = ScriptedApi()
    order = [2, 5, 6, 9]  # S3 holds the others
    signer = PartSigner(api, "u1", order, batch=8, first=2, low=3)

    urls = send_all(signer, order, senders=2)

    assert set(urls) == set(order)
    assert sorted(n for request in api.requests for n in request) == order
    assert all(checksum is None for request in api.requests for checksum in request.values())


def test_a_forgotten_part_is_signed_again() -> None:
    api = ScriptedApi()
    order = [1, 2, 3]
    signer = PartSigner(api, "u1", order, batch=8, first=3, low=4)
    send_all(signer, order, senders=1)

    signer.forget(2)  # S3 answered 403 (expired) or BadDigest
    assert signer.url(2).url == "https://s3/u1/2"

    assert [n for request in api.requests for n in request].count(2) == 2


def test_urls_that_expire_within_the_margin_are_signed_when_used_not_ahead_forever() -> None:
    api = ScriptedApi(lifetime=timedelta(seconds=30))  # under the CLI's 60 s margin: never fresh
    order = list(range(1, 11))
    signer = PartSigner(api, "u1", order, batch=8, first=2, low=3)

    urls = send_all(signer, order, senders=2)

    assert set(urls) == set(order)
    # the ahead thread stopped after its first batch; each part was then signed as it was sent
    assert len(api.requests) <= 1 + len(order)
