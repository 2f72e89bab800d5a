// The plain demo page: issue an upload, send the bytes straight to S3, follow the processing;
// then the caller's uploads, page by page, to download or delete.
import {
  Api,
  ApiError,
  accepts,
  describeProfile,
  downloadLink,
  formatBytes,
  loadConfig,
  sleep,
  thumbnailImage,
} from "./api.js";

const PART_CONCURRENCY = 4;
const PART_RETRIES = 3;
const SIGN_BATCH = 8;
// a part URL this close to its expiry is signed again before use
const RESIGN_MARGIN_MS = 60_000;
// uploads per page of "My uploads"
const PAGE_SIZE = 10;

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("upload-form"),
  file: $("file"),
  profile: $("profile"),
  profileHint: $("profile-hint"),
  upload: $("upload"),
  cancel: $("cancel"),
  apiInfo: $("api-info"),
  progress: $("progress"),
  progressText: $("progress-text"),
  status: $("status"),
  error: $("error"),
  errorTitle: $("error-title"),
  errorDetail: $("error-detail"),
  result: $("result"),
  resultFile: $("result-file"),
  uploadRows: $("upload-rows"),
  uploadsStatus: $("uploads-status"),
  uploadsMore: $("uploads-more"),
  uploadsRefresh: $("uploads-refresh"),
};

let api = null;
let current = null; // {uploadId, abort: AbortController}
let profiles = new Map(); // name -> what GET /profiles says it accepts

async function main() {
  const config = await loadConfig();
  api = new Api(config);
  ui.apiInfo.textContent = `API ${config.apiBaseUrl} · stage ${config.stage} · auth ${config.auth}`;
  try {
    if (await api.signIn()) ui.apiInfo.textContent += ` · signed in as ${api.user}`;
  } catch (error) {
    showError(error);
  }
  try {
    profiles = new Map((await api.profiles()).map((profile) => [profile.name, profile]));
  } catch (error) {
    showError(error);
  }
  const names = [...profiles.keys()];
  const preferred = names.includes("file") ? "file" : names[0];
  ui.profile.replaceChildren(...names.map((name) => new Option(name, name, name === preferred, name === preferred)));
  ui.profileHint.replaceChildren(
    ...[...profiles.values()].flatMap((profile, i) => [i ? document.createElement("br") : "", describeProfile(profile)]),
  );
  ui.upload.disabled = false;
  ui.form.addEventListener("submit", onSubmit);
  ui.cancel.addEventListener("click", onCancel);
  ui.uploadsMore.addEventListener("click", moreUploads);
  ui.uploadsRefresh.addEventListener("click", () => reloadUploads());
  await reloadUploads();
  document.body.dataset.ready = "true";
}

async function onSubmit(event) {
  event.preventDefault();
  const file = ui.file.files[0];
  if (!file) {
    showError(new ApiError(0, "No file chosen", "pick a file to upload first"));
    ui.file.focus();
    return;
  }
  clearError();
  resetResult();
  setProgress(0);
  ui.upload.disabled = true;
  ui.cancel.hidden = false;
  const abort = new AbortController();
  current = { uploadId: null, abort };
  try {
    await upload(file, ui.profile.value, abort.signal);
  } catch (error) {
    if (abort.signal.aborted) {
      setStatus("Upload cancelled.");
    } else {
      setStatus("Upload failed.");
      showError(error);
    }
  } finally {
    ui.upload.disabled = false;
    ui.cancel.hidden = true;
    current = null;
    reloadUploads();
  }
}

async function onCancel() {
  if (!current) return;
  const { uploadId, abort } = current;
  abort.abort();
  if (uploadId) {
    try {
      showResult(await api.remove(uploadId));
    } catch (error) {
      showError(error); // e.g. 409: it had already arrived
    }
  }
}

/** What the profile would refuse, said before any request (the API still checks it all). */
function refusal(file, name) {
  const profile = profiles.get(name);
  if (!profile) return null;
  const type = file.type || "application/octet-stream";
  if (!accepts(profile, type)) {
    return new ApiError(0, "Content type not allowed", `profile ${name} does not accept ${type}`);
  }
  if (file.size > profile.maxSize) {
    const detail = `${file.size} bytes is over the ${name} profile's limit of ${formatBytes(profile.maxSize)}`;
    return new ApiError(0, "Upload too large", detail);
  }
  if (file.size < profile.minSize) {
    return new ApiError(0, "Upload too small", `the ${name} profile needs at least ${profile.minSize} bytes`);
  }
  return null;
}

async function upload(file, profile, signal) {
  const refused = refusal(file, profile);
  if (refused) throw refused;
  setStatus(`Asking the API for an upload URL (${profile}, ${formatBytes(file.size)})…`);
  const issued = await api.request("POST", "/uploads", {
    profile,
    filename: file.name,
    contentType: file.type || "application/octet-stream",
    size: file.size,
  });
  current.uploadId = issued.uploadId;
  showResult({ uploadId: issued.uploadId, status: "PENDING" });

  if (issued.multipart) {
    await uploadMultipart(file, issued, signal);
  } else {
    setStatus("Uploading to S3…");
    await postForm(issued.url, issued.fields, file, signal, (loaded) => setProgress((loaded / file.size) * 100));
  }
  setProgress(100);
  ui.cancel.hidden = true; // the bytes are in: only the pending upload could be called off
  setStatus("Uploaded. Waiting for processing…");
  const view = await api.waitForFinal(issued.uploadId, (update) => {
    showResult(update);
    setStatus(`Status: ${update.status}`);
  });
  showResult(view);
  if (view.status === "PROCESSED") showFile(view);
  setStatus(`Upload ${view.status.toLowerCase()}.`);
}

/** A real multipart/form-data POST: the policy fields first, the file last (S3 ignores fields after it). */
function postForm(url, fields, file, signal, onProgress) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append("file", file);
  return send("POST", url, form, signal, onProgress).then(() => undefined);
}

async function uploadMultipart(file, issued, signal) {
  const { partSize, partCount } = issued.multipart;
  const uploadId = issued.uploadId;
  const loaded = new Array(partCount + 1).fill(0);
  const report = () => setProgress((loaded.reduce((a, b) => a + b, 0) / file.size) * 100);
  const signer = new PartSigner(uploadId, partCount);
  const etags = new Array(partCount + 1);
  let next = 1;
  let done = 0;
  setStatus(`Uploading ${partCount} parts of ${formatBytes(partSize)}, ${PART_CONCURRENCY} at a time…`);

  async function worker() {
    while (next <= partCount) {
      const partNumber = next++;
      const blob = file.slice((partNumber - 1) * partSize, Math.min(partNumber * partSize, file.size));
      for (let attempt = 1; ; attempt++) {
        try {
          const url = await signer.url(partNumber);
          const xhr = await send("PUT", url, blob, signal, (bytes) => {
            loaded[partNumber] = bytes;
            report();
          });
          const etag = xhr.getResponseHeader("ETag");
          if (!etag) {
            throw new ApiError(0, "S3 sent no ETag", "the bucket's CORS configuration must expose the ETag header");
          }
          etags[partNumber] = etag;
          loaded[partNumber] = blob.size;
          report();
          done += 1;
          setStatus(`Uploaded part ${done} of ${partCount}…`);
          break;
        } catch (error) {
          loaded[partNumber] = 0;
          if (signal.aborted || attempt >= PART_RETRIES || error instanceof ApiError && error.status === 403) {
            throw error;
          }
          signer.forget(partNumber); // the URL may have expired: sign it again
          await sleep(500 * attempt);
        }
      }
    }
  }

  await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, partCount) }, worker));
  setStatus("Completing the multipart upload…");
  const parts = etags.slice(1).map((etag, i) => ({ partNumber: i + 1, etag }));
  showResult(await api.request("POST", `/uploads/${uploadId}/complete`, { parts }));
}

/** Signs part URLs a few at a time, just before they are needed, so none is stale when used. */
class PartSigner {
  constructor(uploadId, partCount) {
    this.uploadId = uploadId;
    this.partCount = partCount;
    this.signed = new Map(); // partNumber -> {url, expiresAt}
    this.pending = new Map(); // partNumber -> Promise
  }

  async url(partNumber) {
    const known = this.signed.get(partNumber);
    if (known && Date.parse(known.expiresAt) - Date.now() > RESIGN_MARGIN_MS) return known.url;
    if (!this.pending.has(partNumber)) {
      const numbers = [];
      for (let n = partNumber; n <= this.partCount && numbers.length < SIGN_BATCH; n++) {
        if (!this.signed.has(n) && !this.pending.has(n)) numbers.push(n);
      }
      if (!numbers.includes(partNumber)) numbers.unshift(partNumber);
      const request = api.request("POST", `/uploads/${this.uploadId}/parts`, { partNumbers: numbers }).then((body) => {
        for (const part of body.parts) this.signed.set(part.partNumber, part);
      });
      for (const n of numbers) this.pending.set(n, request);
      request.finally(() => numbers.forEach((n) => this.pending.delete(n))).catch(() => {});
    }
    await this.pending.get(partNumber);
    return this.signed.get(partNumber).url;
  }

  forget(partNumber) {
    this.signed.delete(partNumber);
  }
}

/** XMLHttpRequest (fetch has no upload progress) as a promise; S3's XML errors become ApiErrors. */
function send(method, url, body, signal, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr);
      else reject(s3Error(xhr));
    };
    xhr.onerror = () => reject(new ApiError(0, "Network error", `${method} to storage failed (offline, or CORS?)`));
    xhr.onabort = () => reject(new ApiError(0, "Cancelled", "the upload was cancelled"));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

function s3Error(xhr) {
  let code = "";
  let message = xhr.responseText.slice(0, 300);
  try {
    const doc = new DOMParser().parseFromString(xhr.responseText, "application/xml");
    code = doc.querySelector("Code")?.textContent || "";
    message = doc.querySelector("Message")?.textContent || message;
  } catch {
    // not XML: the raw text is the detail
  }
  return new ApiError(xhr.status, `Storage refused the upload (${xhr.status}${code ? ` ${code}` : ""})`, message);
}

// My uploads
const CREATED = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
let listCursor = null; // nextCursor of the last page shown
let listGeneration = 0; // a reload makes pages still on their way stale

/** The first pages again, as many as are shown now (at least one): after an upload or a delete. */
async function reloadUploads(note = "") {
  const generation = ++listGeneration;
  const wanted = Math.max(ui.uploadRows.children.length, PAGE_SIZE);
  try {
    const items = [];
    let cursor = null;
    do {
      const page = await api.listUploads({ limit: PAGE_SIZE, cursor });
      items.push(...page.items);
      cursor = page.nextCursor || null;
    } while (cursor && items.length < wanted);
    if (generation !== listGeneration) return;
    ui.uploadRows.replaceChildren(...items.map(uploadRow));
    listCursor = cursor;
    clearListError();
    showListState(note);
  } catch (error) {
    if (generation === listGeneration) showListError(error);
  }
}

async function moreUploads() {
  const generation = listGeneration;
  ui.uploadsMore.disabled = true;
  try {
    const page = await api.listUploads({ limit: PAGE_SIZE, cursor: listCursor });
    if (generation !== listGeneration) return;
    ui.uploadRows.append(...page.items.map(uploadRow));
    listCursor = page.nextCursor || null;
    showListState(page.items.length ? "" : "No more uploads.");
  } catch (error) {
    showListError(error);
  } finally {
    ui.uploadsMore.disabled = false;
  }
}

async function deleteUpload(view, button) {
  button.disabled = true;
  clearListError();
  try {
    const after = await api.remove(view.uploadId);
    await reloadUploads(`${view.filename}: ${after.status.toLowerCase()}.`);
  } catch (error) {
    showListError(error); // 409 while it is being processed: the API says so
    button.disabled = false;
  }
}

function uploadRow(view) {
  const tr = document.createElement("tr");
  tr.dataset.uploadId = view.uploadId;
  tr.dataset.status = view.status;
  const cell = (className, ...children) => {
    const td = document.createElement("td");
    td.className = className;
    td.append(...children.filter(Boolean));
    return td;
  };
  const created = document.createElement("time");
  created.dateTime = view.createdAt;
  created.textContent = CREATED.format(new Date(view.createdAt));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary small delete";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete ${view.filename}`);
  remove.addEventListener("click", () => deleteUpload(view, remove));
  const processed = view.status === "PROCESSED";
  const size = view.result?.size ?? view.size;
  tr.append(
    cell("preview", processed && thumbnailImage(api, view, showListError)),
    cell("name", view.filename),
    cell("profile", view.profile),
    cell("status", badge(view.status)),
    cell("size", formatBytes(size)),
    cell("created", created),
    cell("row-actions", processed && downloadLink(api, view, showListError), remove),
  );
  tr.querySelector(".size").title = `${size} bytes`;
  return tr;
}

function showListState(note) {
  const count = ui.uploadRows.children.length;
  let shown = `Showing ${count} upload${count === 1 ? "" : "s"}${listCursor ? "" : ", all there are"}.`;
  if (count === 0) shown = "No uploads yet.";
  ui.uploadsStatus.textContent = note ? `${note} ${shown}` : shown;
  ui.uploadsMore.hidden = !listCursor;
}

function showListError(error) {
  $("uploads-error-title").textContent = error instanceof ApiError ? error.title : "Something went wrong";
  $("uploads-error-detail").textContent = error instanceof ApiError ? error.detail : String(error?.message || error);
  $("uploads-error").hidden = false;
}

function clearListError() {
  $("uploads-error").hidden = true;
}

// view
function badge(status) {
  const span = document.createElement("span");
  span.className = "badge";
  span.textContent = status;
  span.dataset.status = status;
  return span;
}

/** A processed upload's thumbnail (when it has one) and its download link. */
function showFile(view) {
  ui.resultFile.replaceChildren(
    ...[thumbnailImage(api, view, showError), downloadLink(api, view, showError)].filter(Boolean),
  );
  ui.resultFile.hidden = false;
}

function setStatus(text) {
  ui.status.textContent = text;
}

function setProgress(percent) {
  const value = Math.max(0, Math.min(100, percent));
  ui.progress.value = value;
  ui.progressText.textContent = `${Math.floor(value)}%`;
}

function showError(error) {
  ui.errorTitle.textContent = error instanceof ApiError ? error.title : "Something went wrong";
  ui.errorDetail.textContent = error instanceof ApiError ? error.detail : String(error?.message || error);
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorTitle.textContent = "";
  ui.errorDetail.textContent = "";
}

function resetResult() {
  ui.result.hidden = true;
  ui.resultFile.hidden = true;
  ui.resultFile.replaceChildren();
  for (const id of ["result-id", "result-status"]) $(id).textContent = "";
  for (const id of ["result-sha256", "result-size", "result-type", "result-dimensions", "result-error"]) {
    $(id).textContent = "–";
  }
}

function showResult(view) {
  const result = view.result || {};
  ui.result.hidden = false;
  $("result-id").textContent = view.uploadId || "";
  const badge = $("result-status");
  badge.textContent = view.status || "";
  badge.dataset.status = view.status || "";
  $("result-sha256").textContent = view.sha256 || result.sha256 || "–";
  const size = result.size ?? view.size;
  $("result-size").textContent = Number.isFinite(size) ? `${formatBytes(size)} (${size} bytes)` : "–";
  $("result-type").textContent = result.contentType || "–";
  $("result-dimensions").textContent =
    Number.isFinite(result.width) && Number.isFinite(result.height) ? `${result.width} × ${result.height}` : "–";
  $("result-error").textContent = view.error ? `${view.error.code}: ${view.error.message}` : "–";
}

main().catch((error) => {
  showError(error);
  document.body.dataset.ready = "error";
});
