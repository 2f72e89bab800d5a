// The plain demo page: issue an upload, send the bytes straight to S3, follow the processing;
// then the caller's uploads, page by page, to download or delete. The API is spoken by the
// client package (./js/, @directupload/client); this file is the page around it.
import { DirectUploadError } from "./js/src/index.js";
import { connect, describeProfile, downloadLink, explain, formatBytes, loadConfig, thumbnailImage } from "./page.js";

// parts in flight at once, for a multipart upload
const PART_CONCURRENCY = 4;
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

let client = null; // @directupload/client
let current = null; // {uploadId, abort: AbortController}

async function main() {
  const config = await loadConfig();
  const connection = connect(config, { concurrency: PART_CONCURRENCY });
  client = connection.client;
  ui.apiInfo.textContent = `API ${config.apiBaseUrl} · stage ${config.stage} · auth ${config.auth}`;
  try {
    if (await connection.session.signIn()) ui.apiInfo.textContent += ` · signed in as ${connection.session.user}`;
  } catch (error) {
    showError(error);
  }
  let profiles = [];
  try {
    profiles = await client.profiles();
  } catch (error) {
    showError(error);
  }
  const names = profiles.map((profile) => profile.name);
  const preferred = names.includes("file") ? "file" : names[0];
  ui.profile.replaceChildren(...names.map((name) => new Option(name, name, name === preferred, name === preferred)));
  ui.profileHint.replaceChildren(
    ...profiles.flatMap((profile, i) => [i ? document.createElement("br") : "", describeProfile(profile)]),
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
    showError(new DirectUploadError(0, "No file chosen", "pick a file to upload first"));
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
      showResult(await client.delete(uploadId));
    } catch (error) {
      showError(error); // e.g. 409: it had already arrived
    }
  }
}

/**
 * The client checks the file against the profile (GET /profiles) before asking, then sends it as
 * the API answers: one presigned POST, or parts in parallel, re-signed when S3 says a URL expired.
 */
async function upload(file, profile, signal) {
  setStatus(`Asking the API for an upload URL (${profile}, ${formatBytes(file.size)})…`);
  const view = await client.upload(file, {
    profile,
    signal,
    onIssued: (issued) => {
      current.uploadId = issued.uploadId;
      showResult({ uploadId: issued.uploadId, status: "PENDING" });
      const plan = issued.multipart;
      setStatus(
        plan
          ? `Uploading ${plan.partCount} parts of ${formatBytes(plan.partSize)}, ${PART_CONCURRENCY} at a time…`
          : "Uploading to S3…",
      );
    },
    onProgress: ({ loaded, total }) => setProgress((loaded / total) * 100),
  });
  showResult(view);
  setProgress(100);
  ui.cancel.hidden = true; // the bytes are in: only the pending upload could be called off
  setStatus("Uploaded. Waiting for processing…");
  const outcome = await client.waitForOutcome(view.uploadId, {
    onUpdate: (update) => {
      showResult(update);
      setStatus(`Status: ${update.status}`);
    },
  });
  showResult(outcome);
  if (outcome.status === "PROCESSED") showFile(outcome);
  setStatus(`Upload ${outcome.status.toLowerCase()}.`);
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
      const page = await client.list({ limit: PAGE_SIZE, cursor });
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
    const page = await client.list({ limit: PAGE_SIZE, cursor: listCursor });
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
    const after = await client.delete(view.uploadId);
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
    cell("preview", processed && thumbnailImage(client, view, showListError)),
    cell("name", view.filename),
    cell("profile", view.profile),
    cell("status", badge(view.status)),
    cell("size", formatBytes(size)),
    cell("created", created),
    cell("row-actions", processed && downloadLink(client, view, showListError), remove),
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
  const { title, detail } = explain(error);
  $("uploads-error-title").textContent = title;
  $("uploads-error-detail").textContent = detail;
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
    ...[thumbnailImage(client, view, showError), downloadLink(client, view, showError)].filter(Boolean),
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
  const { title, detail } = explain(error);
  ui.errorTitle.textContent = title;
  ui.errorDetail.textContent = detail;
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
