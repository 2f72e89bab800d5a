// The Uppy page: Dashboard + AwsS3 in companionEndpoint mode against this API's /s3/ routes,
// then each file's processing followed through GET /uploads/{uploadId}.
import { DirectUploadError } from "./js/src/index.js";
import { connect, downloadLink, explain, formatBytes, loadConfig, uploadIdFromKey } from "./page.js";

const MiB = 1024 * 1024;
// Uppy decides multipart on the client: the page follows each profile's own plan from GET /profiles
// (multipartThreshold, partSize), so the API and Uppy agree on when and in what parts.
const DEFAULT_PART_SIZE = 16 * MiB;

const $ = (id) => document.getElementById(id);
const rows = new Map(); // Uppy file id -> <tr>
let client = null; // @directupload/client, for the profiles and following each upload

async function main() {
  const config = await loadConfig();
  const { client: connected, session } = connect(config);
  client = connected;
  $("api-info").textContent = `API ${config.apiBaseUrl} · stage ${config.stage} · auth ${config.auth}`;

  const UppyLib = window.Uppy;
  if (!UppyLib || !UppyLib.AwsS3) {
    showError(
      new DirectUploadError(0, "Uppy is not installed", "client-demo/node_modules/uppy is missing: run `make demo-deps`."),
    );
    document.body.dataset.ready = "error";
    return;
  }

  const problems = watchCompanionRequests(config.apiBaseUrl, () => session.token);
  try {
    if (await session.signIn()) $("api-info").textContent += ` · signed in as ${session.user}`;
  } catch (error) {
    showError(error);
  }

  const select = $("profile");
  const profiles = new Map((await client.profiles()).map((profile) => [profile.name, profile]));
  const names = [...profiles.keys()];
  const preferred = names.includes("file") ? "file" : names[0];
  select.replaceChildren(...names.map((name) => new Option(name, name, name === preferred, name === preferred)));

  const uppy = new UppyLib.Uppy({ id: "directupload", autoProceed: false, meta: { profile: select.value } });
  uppy.use(UppyLib.Dashboard, {
    inline: true,
    target: "#dashboard",
    width: "100%",
    height: 380,
    showProgressDetails: true,
    proudlyDisplayPoweredByUppy: false,
    metaFields: [{ id: "profile", name: "Profile", placeholder: names.join(", ") }],
    note: "Straight to S3; the API signs every request.",
  });
  uppy.use(UppyLib.AwsS3, {
    // Uppy calls `${companionEndpoint}/s3/params`, `/s3/multipart`, ... on the API itself.
    companionEndpoint: config.apiBaseUrl,
    // Only this travels as metadata (by default Uppy sends name, type and relativePath too). No
    // size: Uppy sends none, and the API signs the profile's size range for a POST without one.
    allowedMetaFields: ["profile"],
    shouldUseMultipart: (file) => {
      const threshold = profiles.get(file.meta.profile)?.multipartThreshold;
      return Boolean(threshold) && file.size >= threshold;
    },
    // Uppy passes only `{size}` here, not the file: one part size for every profile (the API takes
    // any parts of at least 5 MiB from Uppy)
    getChunkSize: () => DEFAULT_PART_SIZE,
    limit: 4,
  });
  // expose for debugging from the console
  window.demoUppy = uppy;

  select.addEventListener("change", () => {
    // new files get this profile; files not yet uploaded switch to it too
    uppy.setState({ meta: { ...uppy.getState().meta, profile: select.value } });
    for (const file of uppy.getFiles()) {
      if (!file.progress.uploadStarted) uppy.setFileMeta(file.id, { profile: select.value });
    }
  });

  uppy.on("file-added", (file) => {
    uppy.setFileMeta(file.id, { profile: file.meta.profile || select.value });
    row(file);
  });
  uppy.on("file-removed", (file) => {
    rows.get(file.id)?.remove();
    rows.delete(file.id);
  });
  uppy.on("upload-progress", (file, progress) => {
    const total = progress.bytesTotal || file.size || 0;
    const percent = total ? Math.floor((progress.bytesUploaded / total) * 100) : 0;
    update(file, { status: `UPLOADING ${percent}%`, statusKey: "UPLOADING" });
  });
  uppy.on("upload-success", (file, response) => {
    const key = response?.body?.key;
    const uploadId = uploadIdFromKey(key);
    if (!uploadId) {
      update(file, { status: "UNKNOWN", details: `S3 answered with key ${key}: no upload id in it` });
      return;
    }
    update(file, { uploadId, status: "UPLOADED", statusKey: "UPLOADED" });
    follow(file, uploadId);
  });
  uppy.on("upload-error", (file, error) => {
    const problem = problems.about(file.name);
    update(file, {
      status: "ERROR",
      statusKey: "FAILED",
      details: problem ? `${problem.title}: ${problem.detail}` : error.message,
    });
    if (problem) showError(new DirectUploadError(problem.status, problem.title, problem.detail));
  });
  uppy.on("complete", (result) => {
    $("status").textContent =
      `${result.successful.length} uploaded, ${result.failed.length} failed; processing is followed below.`;
  });
  document.body.dataset.ready = "true";
}

/** Poll the upload's status until it is final and show what processing found; once processed, link the file. */
async function follow(file, uploadId) {
  try {
    const view = await client.waitForOutcome(uploadId, { onUpdate: (update_) => update(file, viewFields(update_)) });
    update(file, viewFields(view));
    if (view.status === "PROCESSED") {
      row(file).querySelector(".file-link").replaceChildren(downloadLink(client, view, showError));
    }
    $("status").textContent = `${file.name}: ${view.status}`;
  } catch (error) {
    update(file, { status: "UNKNOWN", details: error.message });
  }
}

function viewFields(view) {
  const result = view.result || {};
  const details = [];
  if (Number.isFinite(result.size ?? view.size)) details.push(formatBytes(result.size ?? view.size));
  if (result.contentType) details.push(result.contentType);
  if (Number.isFinite(result.width) && Number.isFinite(result.height)) details.push(`${result.width} × ${result.height}`);
  if (view.multipart) details.push(`${view.multipart.partCount} parts`);
  if (view.error) details.push(`${view.error.code}: ${view.error.message}`);
  return { status: view.status, statusKey: view.status, sha256: view.sha256 || result.sha256, details: details.join(" · ") };
}

/**
 * Uppy's companion client calls fetch() with no headers and reports only the status text.
 * This wrapper adds the bearer token (auth "jwt") to requests for the API's /s3/ routes and
 * keeps the problem+json bodies of failed ones, so the page can say why.
 */
function watchCompanionRequests(base, token) {
  const original = window.fetch.bind(window);
  const seen = [];
  window.fetch = async (input, init = {}) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!url.startsWith(`${base}/s3/`)) return original(input, init);
    const headers = new Headers(init.headers || undefined);
    if (token()) headers.set("authorization", `Bearer ${token()}`);
    const response = await original(input, { ...init, headers });
    if (!response.ok) {
      let problem = null;
      try {
        problem = await response.clone().json();
      } catch {
        // not JSON: the status line is all there is
      }
      seen.push({
        about: `${decodeURIComponent(url)} ${typeof init.body === "string" ? init.body : ""}`,
        status: response.status,
        title: problem?.title || `HTTP ${response.status}`,
        detail: problem?.detail || response.statusText,
      });
    }
    return response;
  };
  return {
    about(filename) {
      for (let i = seen.length - 1; i >= 0; i--) {
        if (seen[i].about.includes(filename)) return seen[i];
      }
      return null;
    },
  };
}

// view
function row(file) {
  let tr = rows.get(file.id);
  if (tr) return tr;
  tr = document.createElement("tr");
  tr.dataset.fileName = file.name;
  for (const cls of ["name", "profile", "upload mono", "status", "sha mono", "details", "file-link"]) {
    const td = document.createElement("td");
    td.className = cls;
    tr.append(td);
  }
  tr.querySelector(".name").textContent = file.name;
  tr.querySelector(".status").innerHTML = '<span class="badge">WAITING</span>';
  $("outcome-rows").append(tr);
  rows.set(file.id, tr);
  return tr;
}

function update(file, fields) {
  const tr = row(file);
  const current = window.demoUppy?.getFile(file.id) || file;
  tr.querySelector(".profile").textContent = current.meta?.profile || "";
  if (fields.uploadId) setAbbreviated(tr.querySelector(".upload"), fields.uploadId, "uploadId");
  if (fields.status) {
    const badge = tr.querySelector(".badge");
    badge.textContent = fields.status;
    badge.dataset.status = fields.statusKey || fields.status;
    tr.dataset.status = fields.statusKey || fields.status;
  }
  if (fields.sha256) setAbbreviated(tr.querySelector(".sha"), fields.sha256, "sha256");
  if (fields.details !== undefined) tr.querySelector(".details").textContent = fields.details;
}

/** Long hex values shortened on screen; the whole value in the tooltip and a data attribute. */
function setAbbreviated(cell, value, name) {
  cell.textContent = value.length > 20 ? `${value.slice(0, 8)}…${value.slice(-8)}` : value;
  cell.title = value;
  cell.dataset[name] = value;
}

function showError(error) {
  const { title, detail } = explain(error);
  $("error-title").textContent = title;
  $("error-detail").textContent = detail;
  $("error").hidden = false;
}

main().catch((error) => {
  showError(error);
  document.body.dataset.ready = "error";
});
