// What both demo pages share beyond the client package: finding the API, signing in, and the
// bits of page that show a processed file. Plain ES module, no build step. Nothing here names a
// host: config.json (served beside the page by the local stack, or written next to the page by a
// deployment) names the API. The API itself is spoken by @directupload/client (./js/).
import { DirectUploadError, createClient } from "./js/src/index.js";

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

/**
 * A client of the configured API, and who it signs in as. With auth "jwt": on the local stack, a
 * token for `user` from /local/token (dev only); on a deployed stack (no such endpoint), the
 * access token your identity provider gave you, pasted once and kept in sessionStorage. The
 * client asks for a fresh one after a 401.
 */
export function connect(config, { user = "demo-user", ...options } = {}) {
  const session = { user, token: null };
  const token = async ({ refresh }) => {
    if (config.auth !== "jwt") return null;
    if (!session.token || refresh) {
      session.token = config.stage === "local" ? await localToken(config.apiBaseUrl, user) : askForToken(session.token);
    }
    return session.token;
  };
  const client = createClient({ ...options, baseUrl: config.apiBaseUrl, token });
  /** Get the first token now (so the page can say who it is signed in as); null when auth is off. */
  session.signIn = () => token({ refresh: false });
  return { client, session };
}

async function localToken(base, user) {
  const response = await fetch(`${base}/local/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok || typeof body?.token !== "string") {
    throw new DirectUploadError(response.status, body?.title || "Could not sign in", body?.detail || `HTTP ${response.status}`);
  }
  return body.token;
}

function askForToken(previous) {
  const kept = sessionStorage.getItem("directupload.token");
  const token = previous || !kept ? window.prompt("Paste an access token from your identity provider") : kept;
  if (!token) throw new DirectUploadError(401, "Not signed in", "this API needs a bearer token");
  sessionStorage.setItem("directupload.token", token.trim());
  return token.trim();
}

/** Title and detail of any error, for an error box: the API's problem+json when it sent one. */
export function explain(error) {
  if (error instanceof DirectUploadError) return { title: error.title, detail: error.detail };
  return { title: "Something went wrong", detail: String(error?.message || error) };
}

/** "avatar: image/jpeg, image/png up to 5 MiB": one profile in words, for a hint under a picker. */
export function describeProfile(profile) {
  const types = profile.contentTypes.join(", ");
  const multipart = profile.multipartThreshold ? `, multipart from ${formatBytes(profile.multipartThreshold)}` : "";
  return `${profile.name}: ${types} up to ${formatBytes(profile.maxSize)}${multipart}`;
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

/** The upload id in a key the API issued: the segment before the filename
 * (incoming/{uploadId}/{filename}, or incoming/scan/{uploadId}/{filename} for a scanned profile). */
export function uploadIdFromKey(key) {
  const match = /^incoming\/(?:scan\/)?([0-9a-f]{32})\/[^/]+$/.exec(String(key || ""));
  return match ? match[1] : null;
}

/**
 * A link to a processed upload's file. Its href is a presigned GET signed when the link is made
 * (so it is a real link: focusable, copyable); a plain click signs a fresh one and follows that,
 * since they lapse after a few minutes. Images open in a new tab, other files download (the API
 * says which through `disposition`). Signing problems go to `onError`.
 */
export function downloadLink(client, view, onError) {
  const link = document.createElement("a");
  link.className = "download";
  link.textContent = "Download";
  link.setAttribute("aria-label", `Download ${view.filename}`);
  link.target = "_blank";
  link.rel = "noopener";
  const sign = async () => {
    const download = await client.download(view.uploadId);
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
export function thumbnailImage(client, view, onError) {
  if (!view.variants?.includes("thumbnail")) return null;
  const img = document.createElement("img");
  img.className = "thumbnail";
  img.alt = `Thumbnail of ${view.filename}`;
  img.decoding = "async";
  client
    .download(view.uploadId, { variant: "thumbnail" })
    .then((download) => {
      img.src = download.url;
    })
    .catch(onError);
  return img;
}
