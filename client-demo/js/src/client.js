// The directupload API, typed from its OpenAPI document (wire.d.ts, generated): upload a file
// straight to storage (a presigned POST, or multipart parts in parallel), resume one, follow it
// to its outcome, then download, list and delete.
import { ApiError, DirectUploadError, StorageError } from "./errors.js";
import { sendParts, sha256Base64 } from "./multipart.js";
import { checkAgainstProfile } from "./profiles.js";
import { TRANSIENT_STATUSES } from "./statuses.js";
import { NetworkFailure, abortReason, sendWithFetch, sendWithXhr, sleep, throwIfAborted } from "./transport.js";

/** @typedef {import("./wire.js").components["schemas"]} Schemas */
/** @typedef {Schemas["UploadView"]} UploadView */
/** @typedef {Schemas["IssuedUpload"]} IssuedUpload */
/** @typedef {Schemas["ProfileView"]} ProfileView */
/** @typedef {Schemas["Download"]} Download */
/** @typedef {Schemas["UploadPage"]} UploadPage */
/** @typedef {Schemas["Status"]} Status */
/** @typedef {import("./transport.js").Answer} Answer */
/** @typedef {import("./transport.js").Request} Request */

/** @param {string | undefined} status */
export function isFinal(status) {
  return typeof status === "string" && !TRANSIENT_STATUSES.has(status);
}

/**
 * A bearer token, or a function that gives one (called again with `{refresh: true}` once after a
 * 401, so an expired token is replaced). null: send none.
 * @typedef {string | null | ((context: {refresh: boolean}) => string | null | Promise<string | null>)} TokenSource
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} baseUrl the API's URL (a stack's `ApiUrl` output), without a trailing slash
 * @property {TokenSource} [token]
 * @property {typeof fetch} [fetch] default: the global fetch
 * @property {"auto" | "fetch" | "xhr"} [transport] how bytes go to storage; "auto": XMLHttpRequest
 *   where there is one and no `fetch` was given (it reports upload progress), else fetch
 * @property {number} [concurrency] parts in flight at once (default 4)
 * @property {number} [retries] retries of a part, the POST or a throttled API call (default 3)
 */

/**
 * @typedef {object} Progress
 * @property {number} loaded bytes storage has or is receiving
 * @property {number} total the file's size
 */

/**
 * @typedef {object} UploadOptions
 * @property {string} profile the upload profile (GET /profiles)
 * @property {string} [filename] default: the File's name
 * @property {string} [contentType] default: the Blob's type, else application/octet-stream
 * @property {Record<string, string>} [metadata]
 * @property {string} [checksumSha256] hex: processing rejects bytes that do not hash to it
 * @property {(progress: Progress) => void} [onProgress]
 * @property {(issued: IssuedUpload) => void} [onIssued] as soon as the upload id exists (keep it to resume)
 * @property {AbortSignal} [signal] stops sending; the upload stays PENDING (resume it, or delete it)
 * @property {boolean} [check] check size and type against GET /profiles first (default true)
 */

/**
 * @typedef {object} ResumeOptions
 * @property {(progress: Progress) => void} [onProgress]
 * @property {AbortSignal} [signal]
 */

/**
 * @typedef {object} WaitOptions
 * @property {AbortSignal} [signal]
 * @property {number} [timeoutMs] give up after this long (default 120 s): a DirectUploadError
 * @property {(view: UploadView) => void} [onUpdate] every status seen, once each
 */

/**
 * @typedef {object} ListQuery
 * @property {Status} [status]
 * @property {string} [profile]
 * @property {number} [limit] 1..100
 * @property {string} [cursor] `nextCursor` of the previous page
 */

export class DirectUploadClient {
  /** @param {ClientOptions} options */
  constructor({ baseUrl, token = null, fetch: fetchImpl, transport = "auto", concurrency = 4, retries = 3 }) {
    if (!baseUrl) throw new TypeError("baseUrl is required");
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = token;
    /** @type {typeof fetch} */
    this.fetch = fetchImpl ?? ((input, init) => globalThis.fetch(input, init));
    const xhr = transport === "xhr" || (transport === "auto" && !fetchImpl && typeof XMLHttpRequest === "function");
    /** @type {(request: Request) => Promise<Answer>} */
    this.storage = xhr ? sendWithXhr : (request) => sendWithFetch(this.fetch, request);
    this.concurrency = concurrency;
    this.retries = retries;
    /** @type {Promise<ProfileView[]> | null} */
    this.profilesCache = null;
  }

  // --- the API --------------------------------------------------------------------------------

  /**
   * One API call: JSON in and out, the bearer token, one fresh token after a 401, Retry-After
   * honoured on 429 and 503; a non-2xx answer throws its problem+json as an ApiError.
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, signal?: AbortSignal}} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, { body, signal } = {}) {
    let refresh = false;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      /** @type {Record<string, string>} */
      const headers = { accept: "application/json" };
      const token = typeof this.token === "function" ? await this.token({ refresh }) : this.token;
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers["content-type"] = "application/json";
      let answer;
      try {
        answer = await sendWithFetch(this.fetch, {
          method,
          url: `${this.baseUrl}${path}`,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
        });
      } catch (error) {
        if (error instanceof NetworkFailure) throw new ApiError(0, "The API cannot be reached", error.message);
        throw error;
      }
      const payload = parse(answer.text);
      if (answer.status >= 200 && answer.status < 300) return payload;
      const problem = ApiError.from(answer.status, payload, `${method} ${path} failed`, answer.header("Retry-After"));
      if (answer.status === 401 && typeof this.token === "function" && !refresh) {
        refresh = true; // the token lapsed: a fresh one, then the same request once more
        continue;
      }
      const busy = answer.status === 503 || (answer.status === 429 && problem.retryAfter !== null);
      if (busy && attempt < this.retries && (problem.retryAfter ?? 1) <= 30) {
        await sleep((problem.retryAfter ?? 2 ** attempt) * 1000, signal);
        continue;
      }
      throw problem;
    }
  }

  /**
   * GET /profiles: what this deployment accepts. Kept after the first call (`refresh` asks again).
   * @param {{refresh?: boolean}} [options]
   * @returns {Promise<ProfileView[]>}
   */
  profiles({ refresh = false } = {}) {
    if (refresh || !this.profilesCache) {
      this.profilesCache = this.request("GET", "/profiles").then((/** @type {Schemas["ProfileList"]} */ a) => a.profiles);
      this.profilesCache.catch(() => {
        this.profilesCache = null;
      });
    }
    return this.profilesCache;
  }

  /**
   * GET /uploads/{id}: the upload's record.
   * @param {string} uploadId
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<UploadView>}
   */
  status(uploadId, { signal } = {}) {
    return this.request("GET", `/uploads/${encodeURIComponent(uploadId)}`, { signal });
  }

  /**
   * GET /uploads/{id} until the status is final (PROCESSED, REJECTED, FAILED, ...): polls fast at
   * first, then backs off to every 2 s.
   * @param {string} uploadId
   * @param {WaitOptions} [options]
   * @returns {Promise<UploadView>}
   */
  async waitForOutcome(uploadId, { signal, timeoutMs = 120_000, onUpdate } = {}) {
    const started = Date.now();
    let delay = 150;
    let last = "";
    for (;;) {
      const view = await this.status(uploadId, { signal });
      if (view.status !== last) {
        last = view.status;
        onUpdate?.(view);
      }
      if (isFinal(view.status)) return view;
      if (Date.now() - started > timeoutMs) {
        throw new DirectUploadError(0, "Still processing", `upload ${uploadId} is ${view.status} after ${timeoutMs / 1000}s`);
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 1.5, 2000);
    }
  }

  /**
   * GET /uploads/{id}/download[?variant=]: a short-lived URL of the verified bytes (or a variant).
   * @param {string} uploadId
   * @param {{variant?: string, signal?: AbortSignal}} [options]
   * @returns {Promise<Download>}
   */
  download(uploadId, { variant, signal } = {}) {
    const query = variant ? `?variant=${encodeURIComponent(variant)}` : "";
    return this.request("GET", `/uploads/${encodeURIComponent(uploadId)}/download${query}`, { signal });
  }

  /**
   * GET /uploads: one page of the caller's uploads, newest first.
   * @param {ListQuery & {signal?: AbortSignal}} [query]
   * @returns {Promise<UploadPage>}
   */
  list({ status, profile, limit, cursor, signal } = {}) {
    const query = new URLSearchParams();
    if (status) query.set("status", status);
    if (profile) query.set("profile", profile);
    if (limit) query.set("limit", String(limit));
    if (cursor) query.set("cursor", cursor);
    const suffix = query.toString();
    return this.request("GET", `/uploads${suffix ? `?${suffix}` : ""}`, { signal });
  }

  /**
   * Every upload of the caller, newest first, page after page.
   * @param {Omit<ListQuery, "cursor"> & {signal?: AbortSignal}} [query]
   * @returns {AsyncGenerator<UploadView>}
   */
  async *uploads(query = {}) {
    let cursor;
    do {
      const page = await this.list({ ...query, cursor });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /**
   * DELETE /uploads/{id}: cancels a pending upload (aborting its multipart upload in S3), deletes a
   * final one with its files; the record after. 409 while it is being processed.
   * @param {string} uploadId
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<UploadView>}
   */
  delete(uploadId, { signal } = {}) {
    return this.request("DELETE", `/uploads/${encodeURIComponent(uploadId)}`, { signal });
  }

  // --- uploading ----------------------------------------------------------------------------

  /**
   * Upload a file straight to storage: POST /uploads, then the presigned POST or, when the API
   * answers with a multipart plan, the parts in parallel and POST /uploads/{id}/complete.
   * Resolves with the record once storage has the bytes (PENDING or later: follow it with
   * waitForOutcome).
   * @param {Blob} file a File, a Blob, or (Node) `await fs.openAsBlob(path)`
   * @param {UploadOptions} options
   * @returns {Promise<UploadView>}
   */
  async upload(file, { profile, filename, contentType, metadata, checksumSha256, onProgress, onIssued, signal, check = true }) {
    const name = filename ?? (/** @type {{name?: string}} */ (file).name || "upload");
    const type = contentType ?? (file.type || "application/octet-stream");
    if (check) {
      const known = (await this.profiles()).find((p) => p.name === profile);
      const refused = known && checkAgainstProfile(known, { size: file.size, contentType: type });
      if (refused) throw refused; // an unknown profile: the API's own 422 says so
    }
    throwIfAborted(signal);
    /** @type {Schemas["IssueUploadRequest"]} */
    // multipart: the parts' checksums are signed into their URLs, so S3 checks every part
    const ask = { profile, filename: name, contentType: type, size: file.size, partChecksums: true };
    if (metadata) ask.metadata = metadata;
    if (checksumSha256) ask.checksumSha256 = checksumSha256;
    /** @type {IssuedUpload} */
    const issued = await this.request("POST", "/uploads", { body: ask, signal });
    onIssued?.(issued);
    const progress = (/** @type {number} */ loaded) => onProgress?.({ loaded: Math.min(loaded, file.size), total: file.size });
    if (issued.multipart) {
      return this.sendAndComplete(issued.uploadId, file, issued.multipart, new Map(), progress, signal);
    }
    if (!issued.url || !issued.fields) {
      throw new DirectUploadError(0, "Unexpected answer", "POST /uploads answered neither a POST nor a multipart plan");
    }
    await this.postForm(issued.url, issued.fields, file, name, progress, signal);
    progress(file.size);
    return this.status(issued.uploadId, { signal });
  }

  /**
   * Finish a multipart upload that stopped (a crash, a lost connection, an abort): asks which
   * parts S3 holds (GET /uploads/{id}/parts), sends the others, completes. `file` must be the
   * same bytes. An upload that is no longer PENDING is answered as it is.
   * @param {string} uploadId
   * @param {Blob} file
   * @param {ResumeOptions} [options]
   * @returns {Promise<UploadView>}
   */
  async resume(uploadId, file, { onProgress, signal } = {}) {
    const view = await this.status(uploadId, { signal });
    if (view.status !== "PENDING") return view;
    if (!view.multipart) {
      throw new DirectUploadError(409, "Cannot resume", "only a multipart upload resumes: issue a new upload for this file");
    }
    if (view.size !== file.size) {
      throw new DirectUploadError(422, "Not the same file", `upload ${uploadId} is ${view.size} bytes, the file ${file.size}`);
    }
    const { partSize, partCount } = view.multipart;
    /** @type {Schemas["StoredParts"]} */
    const stored = await this.request("GET", `/uploads/${encodeURIComponent(uploadId)}/parts`, { signal });
    const held = new Map();
    for (const part of stored.parts) {
      // S3 never keeps a part cut off half way, but a part of another size is not this file's,
      // and one whose SHA-256 is not this part's bytes neither (the file changed, or it is
      // another of the same size): sent again. A part S3 holds without a checksum is sent again.
      const start = (part.partNumber - 1) * partSize;
      const end = Math.min(part.partNumber * partSize, file.size);
      if (part.partNumber > partCount || part.size !== end - start || !part.checksumSha256) continue;
      if ((await sha256Base64(file.slice(start, end))) === part.checksumSha256) held.set(part.partNumber, part.etag);
    }
    const progress = (/** @type {number} */ loaded) => onProgress?.({ loaded: Math.min(loaded, file.size), total: file.size });
    return this.sendAndComplete(uploadId, file, view.multipart, held, progress, signal);
  }

  /**
   * @param {string} uploadId
   * @param {Blob} file
   * @param {Schemas["MultipartInfo"]} plan
   * @param {Map<number, string>} etags
   * @param {(loaded: number) => void} onProgress
   * @param {AbortSignal | undefined} signal
   * @returns {Promise<UploadView>}
   */
  async sendAndComplete(uploadId, file, { partSize, partCount, checksumAlgorithm }, etags, onProgress, signal) {
    const path = `/uploads/${encodeURIComponent(uploadId)}`;
    await sendParts({
      uploadId,
      file,
      partSize,
      partCount,
      etags,
      sign: (partNumbers, s, checksums) => {
        const body = checksums
          ? { parts: partNumbers.map((partNumber) => ({ partNumber, checksumSha256: checksums.get(partNumber) })) }
          : { partNumbers };
        return this.request("POST", `${path}/parts`, { body, signal: s });
      },
      checksums: checksumAlgorithm === "SHA256",
      put: this.storage,
      concurrency: this.concurrency,
      retries: this.retries,
      signal,
      onProgress,
    });
    const parts = [...etags.entries()].sort(([a], [b]) => a - b).map(([partNumber, etag]) => ({ partNumber, etag }));
    return this.request("POST", `${path}/complete`, { body: { parts }, signal });
  }

  /**
   * The presigned POST: every policy field, then the file last (S3 ignores fields after it).
   * A POST can be sent again until the grant expires, so a 5xx or a lost connection is retried.
   * @param {string} url
   * @param {Record<string, string>} fields
   * @param {Blob} file
   * @param {string} filename
   * @param {(loaded: number) => void} onProgress
   * @param {AbortSignal | undefined} signal
   */
  async postForm(url, fields, file, filename, onProgress, signal) {
    for (let attempt = 0; ; attempt++) {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      form.append("file", file, filename);
      let failure;
      try {
        const answer = await this.storage({ method: "POST", url, body: form, signal, onProgress });
        if (answer.status >= 200 && answer.status < 300) return;
        failure = StorageError.from(answer.status, answer.text);
        if (answer.status < 500 && answer.status !== 429) throw failure;
      } catch (error) {
        if (signal?.aborted) throw abortReason(signal);
        if (!(error instanceof NetworkFailure)) throw error;
        failure = error;
      }
      onProgress(0);
      if (attempt >= this.retries) throw failure;
      await sleep(Math.min(250 * 2 ** attempt, 4000), signal);
    }
  }
}

/**
 * @param {ClientOptions} options
 */
export function createClient(options) {
  return new DirectUploadClient(options);
}

/** @param {string} text */
function parse(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
