// What the API refuses reaches the caller as a typed error with the server's problem+json.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, ProfileCheckError } from "../src/index.js";
import { MiB, client, png, watchedFetch } from "./helpers.js";

test("the server's 413 problem reaches the caller as an ApiError (no client-side check)", async () => {
  // Given a file over the avatar profile's limit, and a client told not to check first
  const file = new Blob([png(4, 4), new Uint8Array(2 * MiB)], { type: "image/png" });

  // When it is uploaded
  const error = await client()
    .upload(file, { profile: "avatar", filename: "huge.png", check: false })
    .catch((e) => e);

  // Then the API's own answer is what the caller gets
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.status, 413);
  assert.equal(error.title, "Upload too large");
  assert.equal(error.type, "urn:directupload:problem:too-large");
  assert.match(error.detail, /avatar/);
  assert.equal(error.body.status, 413);
});

test("the client-side check refuses the same file before any request to /uploads", async () => {
  const watched = watchedFetch();
  const file = new Blob([png(4, 4), new Uint8Array(2 * MiB)], { type: "image/png" });

  const error = await client({ fetch: watched.fetch })
    .upload(file, { profile: "avatar", filename: "huge.png" })
    .catch((e) => e);

  assert.ok(error instanceof ProfileCheckError, String(error));
  assert.equal(error.status, 413);
  assert.equal(error.title, "Upload too large");
  assert.deepEqual(
    watched.state.log.map((r) => `${r.method} ${new URL(r.url).pathname}`),
    ["GET /profiles"],
  );
});

test("a type the profile does not take, an unknown profile, an unknown upload: typed errors", async () => {
  const api = client();
  const pdf = new Blob(["%PDF-1.4"], { type: "application/pdf" });

  const unsupported = await api.upload(pdf, { profile: "avatar", filename: "a.pdf", check: false }).catch((e) => e);
  assert.ok(unsupported instanceof ApiError);
  assert.equal(unsupported.status, 415);

  const unknown = await api.upload(pdf, { profile: "no-such-profile", filename: "a.pdf" }).catch((e) => e);
  assert.ok(unknown instanceof ApiError);
  assert.equal(unknown.status, 422);
  assert.equal(unknown.type, "urn:directupload:problem:unknown-profile");

  const missing = await api.status("0".repeat(32)).catch((e) => e);
  assert.ok(missing instanceof ApiError);
  assert.equal(missing.status, 404);
  assert.ok(missing.title && missing.detail);
});

test("an API that cannot be reached is an ApiError with status 0", async () => {
  const error = await client({ fetch: () => Promise.reject(new TypeError("fetch failed")) })
    .profiles()
    .catch((e) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 0);
});
