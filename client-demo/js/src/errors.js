// What can go wrong, as typed errors: every one has the HTTP status, a title and a detail.

/** Base class of every error this client throws (aborts excepted: those stay the signal's reason). */
export class DirectUploadError extends Error {
  /**
   * @param {number} status the HTTP status (0 when there was no answer)
   * @param {string} title what went wrong, short
   * @param {string} detail what went wrong, for this request
   */
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "DirectUploadError";
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/**
 * The API refused (a 4xx or 5xx answer): its problem+json body (RFC 9457) as sent, so `type`
 * (`urn:directupload:problem:...`), `title`, `status` and `detail` are the server's own.
 * `status` 0: the API could not be reached at all.
 */
export class ApiError extends DirectUploadError {
  /**
   * @param {number} status
   * @param {string} title
   * @param {string} detail
   * @param {{type?: string, body?: unknown, retryAfter?: number | null}} [more]
   */
  constructor(status, title, detail, { type = "about:blank", body = null, retryAfter = null } = {}) {
    super(status, title, detail);
    this.name = "ApiError";
    this.type = type;
    /** the whole answer body (problem extensions included), or its text when it was not JSON */
    this.body = body;
    /** seconds, from Retry-After (429, 503) */
    this.retryAfter = retryAfter;
  }

  /**
   * @param {number} status
   * @param {unknown} body the parsed JSON body, or its text
   * @param {string} fallbackTitle
   * @param {string | null} [retryAfter] the Retry-After header
   */
  static from(status, body, fallbackTitle, retryAfter = null) {
    const seconds = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null;
    if (body && typeof body === "object" && ("title" in body || "detail" in body)) {
      const problem = /** @type {{type?: unknown, title?: unknown, detail?: unknown}} */ (body);
      return new ApiError(status, String(problem.title || fallbackTitle), String(problem.detail || ""), {
        type: typeof problem.type === "string" ? problem.type : "about:blank",
        body,
        retryAfter: seconds,
      });
    }
    const detail = typeof body === "string" && body ? body.slice(0, 300) : `HTTP ${status}`;
    return new ApiError(status, fallbackTitle, detail, { body, retryAfter: seconds });
  }
}

/** Storage (S3) refused a POST or a part PUT: its XML error's code and message. */
export class StorageError extends DirectUploadError {
  /**
   * @param {number} status
   * @param {string} code S3's error code (`AccessDenied`, `EntityTooLarge`, ...), "" when none
   * @param {string} message
   */
  constructor(status, code, message) {
    super(status, `Storage refused the upload (${status}${code ? ` ${code}` : ""})`, message);
    this.name = "StorageError";
    this.code = code;
  }

  /**
   * @param {number} status
   * @param {string} text the XML body S3 answered with
   */
  static from(status, text) {
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? "";
    const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? (text.slice(0, 300) || `HTTP ${status}`);
    return new StorageError(status, code, message);
  }
}

/**
 * A check against the profile (GET /profiles) failed before any request: what the API would
 * answer too (`status` 413, 415 or 422, the same titles). The API checks everything again; this
 * only saves a round trip.
 */
export class ProfileCheckError extends DirectUploadError {
  /**
   * @param {number} status
   * @param {string} title
   * @param {string} detail
   */
  constructor(status, title, detail) {
    super(status, title, detail);
    this.name = "ProfileCheckError";
  }
}
