"""Saving a processed upload (or a variant), verified: the file streams from its short-lived
presigned URL into a temporary file beside the target, hashed on the way, and is renamed into
place only when its size and SHA-256 are the ones the API gave (an existing file only with
--force). The default name is the one the API signed into the URL, reduced to a bare file name."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import requests
import urllib3

from directupload_cli.api import S3_TIMEOUT, Api, describe_network_error, s3_error
from directupload_cli.errors import MismatchError, NetworkError, RefusedError, UsageError
from directupload_cli.output import printable
from directupload_cli.progress import ProgressView

BLOCK = 256 * 1024


def download(
    api: Api, upload_id: str, *, variant: str | None, output: Path | None, force: bool, quiet: bool
) -> dict[str, Any]:
    """Save a processed upload's file (or a variant) verified: the result object."""
    link = api.download(upload_id, variant)
    size, sha256 = int(link["size"]), link.get("sha256")
    try:
        # the presigned URL is its own credential: no API header goes to S3
        reply = requests.get(link["url"], stream=True, timeout=S3_TIMEOUT)
    except requests.RequestException as exc:
        raise NetworkError(f"cannot fetch upload {upload_id} from S3: {describe_network_error(exc)}") from None
    with reply:
        if reply.status_code != 200:
            raise RefusedError(f"S3 refused the download: {s3_error(reply)}", reply.status_code)
        # the name the API signed into the URL (S3 answers it as Content-Disposition)
        served = served_filename(reply.headers.get("Content-Disposition", ""))
        if served is None and variant is None:
            served = api.get(upload_id)["filename"]
        target = download_target(output, served, force=force)
        try:
            with ProgressView(quiet, size, target.name) as progress:
                actual = save_verified(
                    body_chunks(reply), target, size=size, sha256=sha256, force=force, advance=progress.advance
                )
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return {
        "uploadId": upload_id,
        "variant": variant,
        "path": str(target),
        "size": size,
        "sha256": actual,
        "contentType": link["contentType"],
        "checked": ["size", "sha256"] if sha256 else ["size"],
    }


def body_chunks(reply: requests.Response) -> Iterator[bytes]:
    """The body as S3 holds it: a Content-Encoding is not undone (the SHA-256 is of the stored
    bytes, and nothing is inflated on the way)."""
    try:
        yield from reply.raw.stream(BLOCK, decode_content=False)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise NetworkError(f"the download broke off: {type(exc).__name__}") from None


def served_filename(disposition: str) -> str | None:
    """The file name of a Content-Disposition (RFC 6266): the UTF-8 ``filename*``, else ``filename``."""
    extended = re.search(r"filename\*\s*=\s*UTF-8''([^;\s]+)", disposition, re.IGNORECASE)
    if extended:
        return unquote(extended.group(1), errors="replace")
    plain = re.search(r'filename\s*=\s*"([^"]*)"', disposition, re.IGNORECASE)
    return plain.group(1) if plain else None


def bare_name(name: str) -> str | None:
    """An untrusted file name reduced to its last path segment (either slash); None if nothing is left."""
    base = printable(re.split(r"[/\\]", name)[-1], "_").strip()
    return None if base in ("", ".", "..") else base


def download_target(output: Path | None, served: str | None, *, force: bool) -> Path:
    """-o FILE as given; else the served name, bare, in -o DIRECTORY or here."""
    if output is not None and not output.is_dir():
        target = output
    else:
        name = bare_name(served or "")
        if name is None:
            raise UsageError("the API named no usable file name for this download", hint="pass -o FILE")
        target = (output or Path.cwd()) / name
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such directory")
    if os.path.lexists(target) and not force:
        raise UsageError(f"{target} exists", hint="pass --force to overwrite it")
    return target


def save_verified(
    chunks: Iterable[bytes],
    target: Path,
    *,
    size: int,
    sha256: str | None,
    force: bool,
    advance: Callable[[int], None] = lambda n: None,
) -> str:
    """Write the chunks to a temporary file beside ``target``, hashing them as they come, and rename
    it into place only when the byte count (and the SHA-256, if given) are the announced ones.
    Whatever goes wrong, no partial file is left. The SHA-256 of what was saved."""
    digest = hashlib.sha256()
    received = 0
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=".directupload-", suffix=".part")
    partial = Path(name)
    nothing_saved = "nothing was saved; try again, and report it if it happens again"
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise MismatchError(f"S3 sent more than the {size} bytes the API announced", nothing_saved)
                digest.update(chunk)
                handle.write(chunk)
                advance(len(chunk))
        actual = digest.hexdigest()
        if received != size:
            raise MismatchError(f"S3 sent {received} bytes, the API announced {size}", nothing_saved)
        if sha256 is not None and actual != sha256:
            raise MismatchError(
                f"the downloaded bytes are not the verified file: SHA-256 {actual}, the API announced {sha256}",
                nothing_saved,
            )
        partial.chmod(0o666 & ~current_umask())  # as any new file, not the temporary file's 0600
        place(partial, target, force=force)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return actual


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def place(partial: Path, target: Path, *, force: bool) -> None:
    """Rename the finished file into place; without ``force`` never over a file, not even one that
    appeared while downloading (a hard link fails where a rename would replace)."""
    if force:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)
    except FileExistsError:
        raise UsageError(f"{target} exists", hint="pass --force to overwrite it") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(target):
            raise UsageError(f"{target} exists", hint="pass --force to overwrite it") from None
        os.replace(partial, target)
        return
    partial.unlink()
