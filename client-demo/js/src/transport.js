// One request to the API or to storage, by fetch or, where it exists and progress is wanted,
// XMLHttpRequest (fetch reports no upload progress). Both answer the same small shape.

/**
 * @typedef {object} Answer
 * @property {number} status
 * @property {(name: string) => string | null} header
 * @property {string} text
 */

/**
 * @typedef {object} Request
 * @property {string} method
 * @property {string} url
 * @property {Record<string, string>} [headers]
 * @property {BodyInit} [body]
 * @property {AbortSignal} [signal]
 * @property {(loaded: number) => void} [onProgress] bytes of the body sent so far
 */

/** Network failure: no answer at all (offline, DNS, CORS, reset). Retried where retrying is safe. */
export class NetworkFailure extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "NetworkFailure";
  }
}

/**
 * @param {AbortSignal | undefined} signal
 */
export function throwIfAborted(signal) {
  if (signal?.aborted) throw abortReason(signal);
}

/** @param {AbortSignal} signal */
export function abortReason(signal) {
  return signal.reason ?? new DOMException("The upload was aborted", "AbortError");
}

/**
 * @param {typeof fetch} fetchImpl
 * @param {Request} request
 * @returns {Promise<Answer>}
 */
export async function sendWithFetch(fetchImpl, { method, url, headers, body, signal, onProgress }) {
  let response;
  try {
    response = await fetchImpl(url, { method, headers, body, signal });
  } catch (error) {
    throwIfAborted(signal);
    throw new NetworkFailure(`${method} ${url.split("?")[0]}: ${error instanceof Error ? error.message : error}`);
  }
  const text = await response.text();
  if (onProgress && body instanceof Blob && response.ok) onProgress(body.size);
  return { status: response.status, header: (name) => response.headers.get(name), text };
}

/**
 * @param {Request} request
 * @returns {Promise<Answer>}
 */
export function sendWithXhr({ method, url, headers, body, signal, onProgress }) {
  return new Promise((resolve, reject) => {
    throwIfAborted(signal);
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    if (onProgress) {
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded);
      };
    }
    const onAbort = () => xhr.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    xhr.onload = () => {
      done();
      resolve({ status: xhr.status, header: (name) => xhr.getResponseHeader(name), text: xhr.responseText });
    };
    xhr.onerror = () => {
      done();
      reject(new NetworkFailure(`${method} ${url.split("?")[0]} failed (offline, or CORS?)`));
    };
    xhr.onabort = () => {
      done();
      reject(signal ? abortReason(signal) : new DOMException("aborted", "AbortError"));
    };
    xhr.send(/** @type {XMLHttpRequestBodyInit | null} */ (body ?? null));
  });
}

/**
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    throwIfAborted(signal);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(/** @type {AbortSignal} */ (signal)));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A signal that aborts when either does (AbortSignal.any, where the platform lacks it).
 * @param {AbortSignal | undefined} outer
 * @param {AbortSignal} inner
 * @returns {AbortSignal}
 */
export function eitherSignal(outer, inner) {
  if (!outer) return inner;
  const both = new AbortController();
  for (const signal of [outer, inner]) {
    if (signal.aborted) {
      both.abort(signal.reason);
      break;
    }
    signal.addEventListener("abort", () => both.abort(signal.reason), { once: true });
  }
  return both.signal;
}
