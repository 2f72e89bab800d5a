// What both demo pages share: finding the API, signing in, calling it, following an upload.
// Plain ES module, no build step. Nothing here is hard-coded to a host: config.json (served
// beside the page by the local stack, or written next to the page by a deployment) names the API.

// The statuses an upload only passes through (the API's Status enum, GET /openapi.json, names them
// all but not which ones last). Every other status is where following an upload stops: a status
// the API adds later shows up on the page instead of being waited on until the timeout.
const TRANSIENT_STATUSES = new Set(["PENDING", "UPLOADED", "DELETING"]);

export function isFinal(status) {
  return typeof status === "string" && !TRANSIENT_STATUSES.has(status);
}

/** An API answer that was not 2xx, with the problem+json title and detail when the API sent one. */
export class ApiError extends Error {
  constructor(status, title, detail, body) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.body = body;
  }
}

/** {apiBaseUrl, stage, auth} from config.json next to the page; the page's origin when it is missing. */
export async function loadConfig() {
  const fallback = { apiBaseUrl: window.location.origin, stage: "unknown", auth: "none" };
  try {
    const response = await fetch(new URL("config.json", window.location.href), { cache: "no-store" });
    if (!response.ok) return fallback;
    const config = await response.json();
    return {
      apiBaseUrl: String(config.apiBaseUrl || fallback.apiBaseUrl).replace(/\/+$/, ""),
      stage: config.stage || fallback.stage,
      auth: config.auth === "jwt" ? "jwt" : "none",
    };
  } catch {
    return fallback; // no config.json (a static host): the API is assumed to share the page's origin
  }
}

export class Api {
  constructor(config) {
    this.base = config.apiBaseUrl;
    this.auth = config.auth;
    this.stage = config.stage;
    this.token = null;
    this.user = "demo-user";
  }

  /**
   * With auth "jwt": on the local stack, a token for `user` from /local/token (dev only); on a
   * deployed stack (no such endpoint), the access token your identity provider gave you, pasted
   * once and kept in this browser's sessionStorage.
   */
  async signIn(user = "demo-user") {
    if (this.auth !== "jwt") return null;
    this.user = user;
    if (this.stage !== "local") return this.askForToken();
    const response = await fetch(`${this.base}/local/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user }),
    });
    const body = await readBody(response);
    if (!response.ok || !body || typeof body.token !== "string") {
      throw problemFrom(response, body, "Could not sign in");
    }
    this.token = body.token;
    return this.token;
  }

  askForToken() {
    const kept = sessionStorage.getItem("directupload.token");
    const token = this.token || !kept ? window.prompt("Paste an access token from your identity provider") : kept;
    if (!token) throw new ApiError(401, "Not signed in", "this API needs a bearer token");
    sessionStorage.setItem("directupload.token", token.trim());
    this.token = token.trim();
    return this.token;
  }

  headers(extra = {}) {
    return this.token ? { ...extra, authorization: `Bearer ${this.token}` } : { ...extra };
  }

  async request(method, path, body, { retried = false } = {}) {
    const init = { method, headers: this.headers() };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${this.base}${path}`, init);
    } catch (error) {
      throw new ApiError(0, "The API cannot be reached", `${method} ${this.base}${path}: ${error.message}`);
    }
    if (response.status === 401 && this.auth === "jwt" && !retried) {
      await this.signIn(this.user); // the token lapsed: a fresh one, then the same request once more
      return this.request(method, path, body, { retried: true });
    }
    const payload = await readBody(response);
    if (!response.ok) throw problemFrom(response, payload, `${method} ${path} failed`);
    return payload;
  }

  /**
   * GET /profiles: what this deployment's profiles accept, `[{name, contentTypes, minSize, maxSize,
   * multipartThreshold?, partSize?, urlTtlSeconds, downloadTtlSeconds, retainDays?, steps}]`.
   */
  async profiles() {
    const answer = await this.request("GET", "/profiles");
    return answer.profiles;
  }

  /** GET /uploads?limit=&cursor=: `{items, nextCursor?}`, the caller's uploads newest first. */
  listUploads({ limit, cursor } = {}) {
    const query = new URLSearchParams();
    if (limit) query.set("limit", String(limit));
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/uploads?${query}`);
  }

  /** GET /uploads/{id}/download[?variant=]: a presigned GET that lives a few minutes. */
  download(uploadId, variant) {
    const query = variant ? `?variant=${encodeURIComponent(variant)}` : "";
    return this.request("GET", `/uploads/${encodeURIComponent(uploadId)}/download${query}`);
  }

  /** DELETE /uploads/{id}: cancels a pending upload, deletes a final one; the view it answers with. */
  remove(uploadId) {
    return this.request("DELETE", `/uploads/${encodeURIComponent(uploadId)}`);
  }

  /**
   * GET /uploads/{id} until the status is final. `onUpdate(view)` sees every change.
   * Polls fast at first, then backs off; gives up after `timeoutMs`.
   */
  async waitForFinal(uploadId, onUpdate = () => {}, { timeoutMs = 120_000 } = {}) {
    const started = Date.now();
    let delay = 150;
    let last = "";
    for (;;) {
      const view = await this.request("GET", `/uploads/${encodeURIComponent(uploadId)}`);
      if (view.status !== last) {
        last = view.status;
        onUpdate(view);
      }
      if (isFinal(view.status)) return view;
      if (Date.now() - started > timeoutMs) {
        throw new ApiError(0, "Still processing", `upload ${uploadId} is ${view.status} after ${timeoutMs / 1000}s`);
      }
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
    }
  }
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function problemFrom(response, body, fallbackTitle) {
  if (body && typeof body === "object" && (body.title || body.detail)) {
    return new ApiError(response.status, body.title || fallbackTitle, body.detail || "", body);
  }
  const detail = typeof body === "string" && body ? body.slice(0, 300) : `HTTP ${response.status} ${response.statusText}`;
  return new ApiError(response.status, fallbackTitle, detail, body);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** "avatar: image/jpeg, image/png up to 5 MiB": one profile in words, for a hint under a picker. */
export function describeProfile(profile) {
  const types = profile.contentTypes.join(", ");
  const multipart = profile.multipartThreshold ? `, multipart from ${formatBytes(profile.multipartThreshold)}` : "";
  return `${profile.name}: ${types} up to ${formatBytes(profile.maxSize)}${multipart}`;
}

/** Whether `type` matches one of a profile's content types (`image/*` wildcards, as the API). */
export function accepts(profile, type) {
  return profile.contentTypes.some((pattern) =>
    pattern.endsWith("/*") ? type.startsWith(pattern.slice(0, -1)) : pattern === type,
  );
}

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The upload id in a key the API issued: incoming/{uploadId}/{filename}. */
export function uploadIdFromKey(key) {
  const match = /^(?:[^/]+)\/([0-9a-f]{32})\//.exec(String(key || ""));
  return match ? match[1] : null;
}

// --- the read side, shared by both pages ------------------------------------------------------

/**
 * A link to a processed upload's file. Its href is a presigned GET signed when the link is made
 * (so it is a real link: focusable, copyable); a plain click signs a fresh one and follows that,
 * since they lapse after a few minutes. Images open in a new tab, other files download (the API
 * says which through `disposition`). Signing problems go to `onError`.
 */
export function downloadLink(api, view, onError) {
  const link = document.createElement("a");
  link.className = "download";
  link.textContent = "Download";
  link.setAttribute("aria-label", `Download ${view.filename}`);
  link.target = "_blank";
  link.rel = "noopener";
  const sign = async () => {
    const download = await api.download(view.uploadId);
    link.href = download.url;
    return download;
  };
  sign().catch(onError);
  link.addEventListener("click", async (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return; // the browser's own ways
    event.preventDefault();
    try {
      const download = await sign();
      if (download.disposition === "attachment") window.location.assign(download.url);
      else window.open(download.url, "_blank", "noopener");
    } catch (error) {
      onError(error);
    }
  });
  return link;
}

/** The upload's thumbnail variant as an <img>, or null when the API lists none for it. */
export function thumbnailImage(api, view, onError) {
  if (!view.variants?.includes("thumbnail")) return null;
  const img = document.createElement("img");
  img.className = "thumbnail";
  img.alt = `Thumbnail of ${view.filename}`;
  img.decoding = "async";
  api
    .download(view.uploadId, "thumbnail")
    .then((download) => {
      img.src = download.url;
    })
    .catch(onError);
  return img;
}
