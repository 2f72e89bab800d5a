// After processing: download the verified bytes (or the thumbnail), list, delete; and the profiles.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "../src/index.js";
import { client, png, sha256 } from "./helpers.js";

test("a processed upload downloads, lists, and deletes", async () => {
  // Given a processed PNG
  const data = png(120, 80);
  const api = client();
  const { uploadId } = await api.upload(new Blob([data], { type: "image/png" }), {
    profile: "avatar",
    filename: "photo.png",
  });
  assert.equal((await api.waitForOutcome(uploadId)).status, "PROCESSED");

  // Then its download URL gives exactly its bytes, and its thumbnail is an image
  const download = await api.download(uploadId);
  assert.equal(download.contentType, "image/png");
  assert.equal(download.disposition, "inline");
  assert.equal(sha256(await (await fetch(download.url)).arrayBuffer()), sha256(data));
  const thumbnail = await api.download(uploadId, { variant: "thumbnail" });
  assert.equal(thumbnail.variant, "thumbnail");
  assert.ok((await fetch(thumbnail.url)).ok);

  // and it is listed first, newest first, page by page
  const page = await api.list({ limit: 1 });
  assert.equal(page.items[0].uploadId, uploadId);
  assert.ok(page.nextCursor, "more than one upload on this stack by now");
  const processed = [];
  for await (const view of api.uploads({ status: "PROCESSED", profile: "avatar", limit: 2 })) processed.push(view);
  assert.ok(processed.some((view) => view.uploadId === uploadId));
  assert.ok(processed.every((view) => view.status === "PROCESSED" && view.profile === "avatar"));
  assert.equal(new Set(processed.map((view) => view.uploadId)).size, processed.length);

  // When it is deleted
  const deleted = await api.delete(uploadId);

  // Then it is DELETED, and nothing more can be downloaded
  assert.equal(deleted.status, "DELETED");
  assert.equal((await api.status(uploadId)).status, "DELETED");
  const refused = await api.download(uploadId).catch((e) => e);
  assert.ok(refused instanceof ApiError);
  assert.equal(refused.status, 409);
});

test("a pending upload is cancelled by delete", async () => {
  const api = client();
  const file = new Blob([new Uint8Array(6 * 1024 * 1024)]);
  let uploadId = "";
  const abort = new AbortController();
  const started = api.upload(file, {
    profile: "blob",
    filename: "never.bin",
    signal: abort.signal,
    onIssued: (issued) => {
      uploadId = issued.uploadId;
      abort.abort();
    },
  });
  await assert.rejects(started, (e) => e.name === "AbortError");

  assert.equal((await api.delete(uploadId)).status, "CANCELLED");
  assert.equal((await api.waitForOutcome(uploadId)).status, "CANCELLED");
});

test("profiles say what the stack accepts", async () => {
  const profiles = await client().profiles();
  const blob = profiles.find((p) => p.name === "blob");
  assert.ok(blob);
  assert.equal(blob.multipartThreshold, 5 * 1024 * 1024);
  assert.ok(profiles.find((p) => p.name === "avatar")?.steps.includes("image"));
});
