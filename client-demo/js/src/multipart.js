// The parts of a multipart upload: signed a few at a time just before use, sent in parallel,
// retried, signed again after S3's 403 (an expired URL), skipped when S3 already holds them.
// An upload opened with part checksums hashes each part (SHA-256, crypto.subtle) before asking
// for its URL, which signs the checksum: S3 refuses the part if other bytes arrive (BadDigest,
// retried: the bytes were damaged on the way).
import { DirectUploadError, StorageError } from "./errors.js";
import { NetworkFailure, abortReason, eitherSignal, sleep, throwIfAborted } from "./transport.js";

/** @typedef {import("./wire.js").components["schemas"]} Schemas */
/** @typedef {import("./transport.js").Answer} Answer */
/** @typedef {import("./transport.js").Request} Request */

/** Parts signed in one POST /uploads/{id}/parts call. */
const SIGN_BATCH = 8;
/** A part URL this close to its expiry is signed again before use. */
const RESIGN_MARGIN_MS = 60_000;

/**
 * @typedef {object} PartsJob
 * @property {string} uploadId
 * @property {Blob} file
 * @property {number} partSize
 * @property {number} partCount
 * @property {Map<number, string>} etags parts already held (resume): partNumber -> ETag; filled in
 * @property {(partNumbers: number[], signal: AbortSignal, checksums?: Map<number, string>) => Promise<Schemas["SignedParts"]>} sign
 *   `checksums`: partNumber -> base64 SHA-256 of the part, signed into its URL
 * @property {boolean} checksums the upload takes part checksums (its plan's checksumAlgorithm is SHA256)
 * @property {(request: Request) => Promise<Answer>} put
 * @property {number} concurrency
 * @property {number} retries attempts after the first, per part
 * @property {AbortSignal | undefined} signal
 * @property {(loaded: number) => void} onProgress bytes of the file S3 holds or is receiving
 */

/** The byte range of part `n` (1-based): every part `partSize` bytes, the last the rest. */
export function partRange(/** @type {number} */ n, /** @type {number} */ partSize, /** @type {number} */ size) {
  return [(n - 1) * partSize, Math.min(n * partSize, size)];
}

/**
 * The part's SHA-256 as S3 takes it (base64 of the 32 bytes).
 * @param {Blob} blob
 */
export async function sha256Base64(blob) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  return btoa(String.fromCharCode(...digest));
}

/**
 * Send every part not yet in `job.etags`, `concurrency` at a time. Resolves when all are in
 * (then `job.etags` holds each part's ETag); rejects with the first part's error that retries
 * could not cure, after stopping the others.
 * @param {PartsJob} job
 */
export async function sendParts(job) {
  const { file, partSize, partCount, etags } = job;
  const stop = new AbortController();
  const signal = eitherSignal(job.signal, stop.signal);
  const signer = new PartSigner(job, signal);
  const loaded = new Map(); // partNumber -> bytes sent
  for (const n of etags.keys()) loaded.set(n, partRange(n, partSize, file.size)[1] - partRange(n, partSize, file.size)[0]);
  const report = () => job.onProgress([...loaded.values()].reduce((a, b) => a + b, 0));
  report();
  /** @type {number[]} */
  const todo = [];
  for (let n = 1; n <= partCount; n++) if (!etags.has(n)) todo.push(n);
  signer.order = todo;

  const worker = async () => {
    for (let next = todo.shift(); next !== undefined; next = todo.shift()) {
      const partNumber = next;
      const [start, end] = partRange(partNumber, partSize, file.size);
      const body = file.slice(start, end);
      const checksum = job.checksums ? await sha256Base64(body) : undefined;
      for (let attempt = 0; ; attempt++) {
        throwIfAborted(signal);
        let failure;
        try {
          const url = await signer.url(partNumber, checksum);
          const answer = await job.put({
            method: "PUT",
            url,
            body,
            headers: checksum ? { "x-amz-checksum-sha256": checksum } : undefined,
            signal,
            onProgress: (bytes) => {
              loaded.set(partNumber, bytes);
              report();
            },
          });
          if (answer.status >= 200 && answer.status < 300) {
            const etag = answer.header("ETag");
            if (!etag) {
              throw new DirectUploadError(0, "S3 sent no ETag", "the bucket's CORS configuration must expose the ETag header");
            }
            etags.set(partNumber, etag);
            loaded.set(partNumber, end - start);
            report();
            break;
          }
          failure = StorageError.from(answer.status, answer.text);
          // 403: the URL expired (or its clock skewed): sign again. 5xx, 429: S3 busy. BadDigest:
          // the bytes S3 got do not hash to the part's checksum (damaged on the way). Else final.
          if (answer.status === 403) signer.forget(partNumber);
          else if (answer.status < 500 && answer.status !== 429 && failure.code !== "BadDigest") throw failure;
        } catch (error) {
          if (signal.aborted) throw abortReason(signal);
          if (!(error instanceof NetworkFailure)) throw error;
          failure = error;
        }
        loaded.set(partNumber, 0);
        report();
        if (attempt >= job.retries) throw failure;
        await sleep(Math.min(250 * 2 ** attempt, 4000), signal);
      }
    }
  };

  const workers = Array.from({ length: Math.max(1, Math.min(job.concurrency, todo.length)) }, () =>
    worker().catch((error) => {
      stop.abort(error); // the others stop too; the first error is the one reported
      throw error;
    }),
  );
  const results = await Promise.allSettled(workers);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw job.signal?.aborted ? abortReason(job.signal) : stop.signal.reason ?? failed.reason;
}

/** Signs part URLs a few at a time, in the order they will be sent, so none is stale when used. */
class PartSigner {
  /**
   * @param {PartsJob} job
   * @param {AbortSignal} signal
   */
  constructor(job, signal) {
    this.job = job;
    this.signal = signal;
    /** @type {number[]} parts still to send, in order: the next batch to sign comes from here */
    this.order = [];
    /** @type {Map<number, {url: string, expiresAt: string}>} */
    this.signed = new Map();
    /** @type {Map<number, Promise<void>>} */
    this.pending = new Map();
  }

  /**
   * @param {number} partNumber
   * @param {string} [checksum] the part's base64 SHA-256: then the part is signed alone, with it
   */
  async url(partNumber, checksum) {
    const known = this.signed.get(partNumber);
    if (known && Date.parse(known.expiresAt) - Date.now() > RESIGN_MARGIN_MS) return known.url;
    if (checksum !== undefined) {
      const answer = await this.job.sign([partNumber], this.signal, new Map([[partNumber, checksum]]));
      const part = answer.parts.find((p) => p.partNumber === partNumber);
      if (!part) throw new DirectUploadError(0, "Part not signed", `the API signed no URL for part ${partNumber}`);
      this.signed.set(partNumber, part);
      return part.url;
    }
    if (!this.pending.has(partNumber)) {
      const numbers = [partNumber];
      for (const n of this.order) {
        if (numbers.length >= SIGN_BATCH) break;
        if (n !== partNumber && !this.signed.has(n) && !this.pending.has(n)) numbers.push(n);
      }
      const request = this.job.sign(numbers, this.signal).then((answer) => {
        for (const part of answer.parts) this.signed.set(part.partNumber, part);
      });
      for (const n of numbers) this.pending.set(n, request);
      request.finally(() => numbers.forEach((n) => this.pending.delete(n))).catch(() => {});
    }
    await this.pending.get(partNumber);
    const signed = this.signed.get(partNumber);
    if (!signed) throw new DirectUploadError(0, "Part not signed", `the API signed no URL for part ${partNumber}`);
    return signed.url;
  }

  /** @param {number} partNumber */
  forget(partNumber) {
    this.signed.delete(partNumber);
  }
}
