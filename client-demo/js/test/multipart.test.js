// A file over its profile's multipart threshold: parts in parallel, retried, re-signed, resumed.
// The stack runs with a "blob" profile that goes multipart from 5 MiB in 5 MiB parts.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createHash } from "node:crypto";

import { MiB, bytes, client, partNumberOf, sha256, watchedFetch } from "./helpers.js";

const isPartPut = (/** @type {{method: string, url: string}} */ r) => r.method === "PUT" && r.url.includes("partNumber=");
const signed = (/** @type {{method: string, url: string, body: any}[]} */ log) =>
  log
    .filter((r) => r.method === "POST" && r.url.endsWith("/parts"))
    .flatMap((r) => r.body.partNumbers ?? r.body.parts.map((/** @type {{partNumber: number}} */ p) => p.partNumber));

test("a large file goes up in parts, several at a time, and comes out PROCESSED", async () => {
  // Given 11 MiB and a bit: three parts (5 MiB, 5 MiB, the rest)
  const data = bytes(11 * MiB + 7, 2);
  const watched = watchedFetch();
  const api = client({ fetch: watched.fetch, concurrency: 3 });
  const issued = [];
  const progress = [];

  // When it is uploaded
  const view = await api.upload(new Blob([data]), {
    profile: "blob",
    filename: "big.bin",
    onIssued: (answer) => issued.push(answer),
    onProgress: (p) => progress.push(p.loaded),
  });

  // Then the API chose multipart, the three parts went in parallel, each once
  assert.deepEqual(issued[0].multipart, { partSize: 5 * MiB, partCount: 3, checksumAlgorithm: "SHA256" });
  const puts = watched.state.log.filter(isPartPut).map((r) => partNumberOf(r.url));
  assert.deepEqual(puts.sort(), [1, 2, 3]);
  assert.ok(watched.state.maxInFlight >= 2, `parts in flight at once: ${watched.state.maxInFlight}`);
  assert.equal(progress.at(-1), data.length);
  // and the whole file was processed
  const outcome = await api.waitForOutcome(view.uploadId);
  assert.equal(outcome.status, "PROCESSED", JSON.stringify(outcome));
  assert.equal(outcome.sha256, sha256(data));
  assert.equal(outcome.size, data.length);
});

test("a part S3 refuses with 403 (an expired URL) is signed again and sent again", async () => {
  // Given storage that answers the first PUT of part 2 as S3 does an expired URL
  const data = bytes(10 * MiB + 100, 3);
  let refused = 0;
  const watched = watchedFetch({
    meddle: (r) => {
      if (isPartPut(r) && partNumberOf(r.url) === 2 && refused++ === 0) {
        const xml = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        return new Response(xml, { status: 403, headers: { "content-type": "application/xml" } });
      }
      return undefined;
    },
  });
  const api = client({ fetch: watched.fetch });

  // When the file is uploaded
  const view = await api.upload(new Blob([data]), { profile: "blob", filename: "expired.bin" });

  // Then part 2 was signed twice and sent twice, the others once, and the file is whole
  assert.equal(signed(watched.state.log).filter((n) => n === 2).length, 2);
  const puts = watched.state.log.filter(isPartPut).map((r) => partNumberOf(r.url));
  assert.equal(puts.filter((n) => n === 2).length, 2);
  assert.equal(puts.filter((n) => n === 1).length, 1);
  const outcome = await api.waitForOutcome(view.uploadId);
  assert.equal(outcome.status, "PROCESSED", JSON.stringify(outcome));
  assert.equal(outcome.sha256, sha256(data));
});

/**
 * Upload `file` one part at a time and abort once two parts are in: the client, and the upload id.
 * @param {Blob} file
 * @param {string} filename
 */
async function abortedAfterTwoParts(file, filename) {
  const abort = new AbortController();
  let done = 0;
  const api = client({
    concurrency: 1,
    fetch: async (input, init) => {
      const answer = await fetch(input, init);
      if (init?.method === "PUT" && answer.ok && ++done === 2) abort.abort();
      return answer;
    },
  });
  let uploadId = "";
  await assert.rejects(
    api.upload(file, {
      profile: "blob",
      filename,
      signal: abort.signal,
      onIssued: (issued) => {
        uploadId = issued.uploadId;
      },
    }),
    (error) => error.name === "AbortError",
  );
  return { api, uploadId };
}

test("an upload aborted after some parts resumes from the parts S3 holds", async () => {
  // Given a four-part file, sent one part at a time, aborted once two parts are in
  const data = bytes(16 * MiB + 3, 4);
  const file = new Blob([data]);
  const { api, uploadId } = await abortedAfterTwoParts(file, "resumed.bin");
  assert.equal((await api.status(uploadId)).status, "PENDING");

  // When it is resumed, by a client that knows only the upload id and the file
  const second = watchedFetch();
  const progress = [];
  const view = await client({ fetch: second.fetch }).resume(uploadId, file, {
    onProgress: (p) => progress.push(p.loaded),
  });

  // Then only the missing parts were sent, and the whole file was processed
  const resent = second.state.log.filter(isPartPut).map((r) => partNumberOf(r.url));
  assert.deepEqual(resent.sort(), [3, 4]);
  assert.equal(progress[0], 10 * MiB); // the two parts S3 held count from the start
  assert.ok(second.state.log.some((r) => r.method === "GET" && r.url.endsWith(`/uploads/${uploadId}/parts`)));
  const outcome = await api.waitForOutcome(view.uploadId);
  assert.equal(outcome.status, "PROCESSED", JSON.stringify(outcome));
  assert.equal(outcome.sha256, sha256(data));
});

test("a resume with other bytes of the same size keeps none of the parts S3 holds", async () => {
  // Given a four-part upload aborted once two parts are in
  const data = bytes(16 * MiB + 3, 6);
  const { api, uploadId } = await abortedAfterTwoParts(new Blob([data]), "changed.bin");

  // When it is resumed with another file of the same size (the first one changed since)
  const other = bytes(16 * MiB + 3, 7);
  const second = watchedFetch();
  const view = await client({ fetch: second.fetch }).resume(uploadId, new Blob([other]));

  // Then every part was sent again, and what was processed is the file as it is now
  const resent = second.state.log.filter(isPartPut).map((r) => partNumberOf(r.url));
  assert.deepEqual(resent.sort(), [1, 2, 3, 4]);
  const outcome = await api.waitForOutcome(view.uploadId);
  assert.equal(outcome.status, "PROCESSED", JSON.stringify(outcome));
  assert.equal(outcome.sha256, sha256(other));
});

test("each part's SHA-256 is signed into its URL and sent with it; a damaged part is sent again", async () => {
  // Given storage that answers the first PUT of part 2 as S3 does bytes that do not match their checksum
  const data = bytes(10 * MiB + 5, 5);
  let damaged = 0;
  const watched = watchedFetch({
    meddle: (r) => {
      if (isPartPut(r) && partNumberOf(r.url) === 2 && damaged++ === 0) {
        const xml = "<Error><Code>BadDigest</Code><Message>The SHA256 you specified did not match the calculated checksum.</Message></Error>";
        return new Response(xml, { status: 400, headers: { "content-type": "application/xml" } });
      }
      return undefined;
    },
  });
  const api = client({ fetch: watched.fetch });

  // When the file is uploaded
  const view = await api.upload(new Blob([data]), { profile: "blob", filename: "checked.bin" });

  // Then every part was signed with its own checksum, which its URL signs and its PUT carries
  const expected = (/** @type {number} */ n) =>
    createHash("sha256").update(data.subarray((n - 1) * 5 * MiB, Math.min(n * 5 * MiB, data.length))).digest("base64");
  const asked = watched.state.log.filter((r) => r.method === "POST" && r.url.endsWith("/parts")).flatMap((r) => r.body.parts);
  assert.ok(asked.length >= 3);
  for (const part of asked) assert.equal(part.checksumSha256, expected(part.partNumber));
  for (const put of watched.state.log.filter(isPartPut)) {
    const n = partNumberOf(put.url);
    assert.equal(put.headers?.["x-amz-checksum-sha256"], expected(n));
    assert.match(new URL(put.url).searchParams.get("X-Amz-SignedHeaders") ?? "", /x-amz-checksum-sha256/);
  }
  // and part 2 went again after BadDigest; the whole file was processed
  const puts = watched.state.log.filter(isPartPut).map((r) => partNumberOf(r.url));
  assert.equal(puts.filter((n) => n === 2).length, 2);
  const outcome = await api.waitForOutcome(view.uploadId);
  assert.equal(outcome.status, "PROCESSED", JSON.stringify(outcome));
  assert.equal(outcome.sha256, sha256(data));
});
