"""The JavaScript client (client-demo/js, @directupload/client) with Node's test runner against
the local stack, and its wire types checked against the API's OpenAPI document.

The Node tests (client-demo/js/test/*.test.js) get the stack's URL in DIRECTUPLOAD_API_URL; the
stack runs with two profiles of its own: `avatar` (images up to 1 MiB) and `blob` (anything,
multipart from 5 MiB in 5 MiB parts, S3's minimum), so a multipart upload takes 11 MiB, not 33.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Stack, start_stack, stop_stack

PACKAGE = ROOT / "client-demo" / "js"
BIN = PACKAGE / "node_modules" / ".bin"
MiB = 1024 * 1024
PROFILES = {
    "avatar": {"contentTypes": ["image/png", "image/jpeg"], "maxSize": MiB, "steps": ["verify", "image"]},
    "blob": {
        "contentTypes": ["application/octet-stream"],
        "maxSize": 64 * MiB,
        "multipartThreshold": 5 * MiB,
        "partSize": 5 * MiB,
        "steps": ["verify"],
    },
}


def require_package() -> None:
    node = shutil.which("node")
    if node is None or not (BIN / "tsc").exists():
        pytest.fail("node or client-demo/js/node_modules is missing: run `make demo-deps` (npm ci in client-demo/js)")


def run(*command: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def js_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("js-stack"), "--parameter", f"ProfilesJson={json.dumps(PROFILES)}")
    yield stack
    stop_stack(stack)


def test_the_node_suite_passes_against_the_local_stack(js_stack: Stack) -> None:
    require_package()
    tests = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.glob("test/*.test.js"))
    assert tests, "no client-demo/js/test/*.test.js"
    done = run("node", "--test", "--test-reporter=spec", *tests, env={"DIRECTUPLOAD_API_URL": js_stack.url})
    assert done.returncode == 0, (
        f"node --test failed:\n{done.stdout}\n{done.stderr}\n--- stack log:\n{js_stack.log()[-4000:]}"
    )
    # the spec reporter's summary: tests ran, and none failed
    passed = re.search(r"\bpass (\d+)", done.stdout)
    assert passed and int(passed.group(1)) > 0 and re.search(r"\bfail 0\b", done.stdout), done.stdout


def test_the_wire_types_are_generated_from_the_api_as_it_is_now(tmp_path: Path) -> None:
    """client-demo/js/src/wire.d.ts is openapi-typescript's output for GET /openapi.json: a route or
    model changed without `make js-wire` fails here."""
    require_package()
    # a process of its own: the handler reads its settings from the environment at import
    printed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "openapi.py")], capture_output=True, text=True, timeout=120, check=True
    )
    spec = tmp_path / "openapi.json"
    spec.write_text(printed.stdout)
    out = tmp_path / "wire.d.ts"
    done = run(str(BIN / "openapi-typescript"), str(spec), "-o", str(out))
    assert done.returncode == 0, done.stderr
    committed = (PACKAGE / "src" / "wire.d.ts").read_text()
    assert out.read_text() == committed, "client-demo/js/src/wire.d.ts is stale: run `make js-wire` and commit it"


def test_the_client_type_checks_against_the_wire_types_and_declares_its_api(tmp_path: Path) -> None:
    """tsc checks the JSDoc-typed sources against wire.d.ts (a renamed field breaks the build), and
    emits the declarations the package publishes."""
    require_package()
    checked = run(str(BIN / "tsc"), "-p", "tsconfig.json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    emitted = run(
        str(BIN / "tsc"), "-p", "tsconfig.json", "--noEmit", "false", "--declaration", "--emitDeclarationOnly",
        "--outDir", str(tmp_path),
    )  # fmt: skip
    assert emitted.returncode == 0, emitted.stdout + emitted.stderr
    declared = (tmp_path / "client.d.ts").read_text()
    for method in ("upload(", "resume(", "status(", "waitForOutcome(", "download(", "list(", "delete(", "profiles("):
        assert method in declared, method
    assert 'import("./wire.js").components["schemas"]' in declared

    # and TypeScript code using the published declarations (wire types included) compiles, and
    # what it should not compile does not
    shutil.copy(PACKAGE / "src" / "wire.d.ts", tmp_path / "wire.d.ts")
    consumer = tmp_path / "consumer.ts"
    consumer.write_text(CONSUMER)
    compiled = run(
        str(BIN / "tsc"), "--noEmit", "--strict", "--module", "nodenext", "--target", "es2022", str(consumer)
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    consumer.write_text(CONSUMER.replace("view.sha256", "view.sha512"))
    refused = run(str(BIN / "tsc"), "--noEmit", "--strict", "--module", "nodenext", "--target", "es2022", str(consumer))
    assert refused.returncode != 0 and "sha512" in refused.stdout, refused.stdout


CONSUMER = """
import { ApiError, createClient, type UploadView, type Status } from "./index.js";

export async function send(file: Blob): Promise<string | null | undefined> {
    const client = createClient({ baseUrl: "https://api.example.com", token: async () => "t" });
    const view: UploadView = await client.upload(file, { profile: "avatar", onProgress: (p) => p.loaded / p.total });
    const status: Status = (await client.waitForOutcome(view.uploadId)).status;
    const page = await client.list({ status, limit: 10 });
    try {
        await client.download(page.items[0].uploadId, { variant: "thumbnail" });
    } catch (error) {
        if (error instanceof ApiError) return `${error.status} ${error.title}: ${error.detail}`;
    }
    return view.sha256;
}
"""
