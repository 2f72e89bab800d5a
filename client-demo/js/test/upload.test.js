// A small file: one presigned POST, then its processing followed to the outcome.
import assert from "node:assert/strict";
import { test } from "node:test";

import { client, png, sha256 } from "./helpers.js";

test("a small PNG goes up in one presigned POST and comes out PROCESSED", async () => {
  // Given a real PNG
  const data = png(64, 48);
  const api = client();
  const issued = [];
  const progress = [];

  // When it is uploaded as an avatar
  const view = await api.upload(new Blob([data], { type: "image/png" }), {
    profile: "avatar",
    filename: "cat.png",
    onIssued: (answer) => issued.push(answer),
    onProgress: (p) => progress.push(p),
  });

  // Then the API chose a single POST, storage has the bytes, and processing verified them
  assert.equal(issued.length, 1);
  assert.equal(issued[0].method, "POST");
  assert.equal(issued[0].multipart, undefined);
  assert.equal(view.uploadId, issued[0].uploadId);
  assert.deepEqual(progress.at(-1), { loaded: data.length, total: data.length });
  const updates = [];
  const outcome = await api.waitForOutcome(view.uploadId, { onUpdate: (v) => updates.push(v.status) });
  assert.equal(outcome.status, "PROCESSED", JSON.stringify(outcome));
  assert.equal(outcome.sha256, sha256(data));
  assert.equal(outcome.result?.contentType, "image/png");
  assert.equal(outcome.result?.width, 64);
  assert.equal(updates.at(-1), "PROCESSED");
});

test("a File's own name and type are used when none are given", async () => {
  const data = png(8, 8);
  const api = client();

  const view = await api.upload(new File([data], "dot.png", { type: "image/png" }), { profile: "avatar" });

  assert.equal(view.filename, "dot.png");
  assert.equal(view.contentType, "image/png");
  assert.equal((await api.waitForOutcome(view.uploadId)).status, "PROCESSED");
});

test("a file on disk goes up from fs.openAsBlob, as Node code would send it", async () => {
  const { openAsBlob } = await import("node:fs");
  const { mkdtemp, writeFile } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const data = png(16, 16);
  const path = join(await mkdtemp(join(tmpdir(), "directupload-")), "disk.png");
  await writeFile(path, data);
  const api = client();

  const view = await api.upload(await openAsBlob(path, { type: "image/png" }), { profile: "avatar", filename: "disk.png" });

  const outcome = await api.waitForOutcome(view.uploadId);
  assert.equal(outcome.status, "PROCESSED", JSON.stringify(outcome));
  assert.equal(outcome.sha256, sha256(data));
});
