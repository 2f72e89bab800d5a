// @directupload/client: the directupload API from browsers and Node 20+, no framework, no build.
export { DirectUploadClient, createClient, isFinal } from "./client.js";
export { FINAL_STATUSES, STATUSES, TRANSIENT_STATUSES } from "./statuses.js";
export { ApiError, DirectUploadError, ProfileCheckError, StorageError } from "./errors.js";
export { partRange } from "./multipart.js";
export { accepts, checkAgainstProfile } from "./profiles.js";

/** @typedef {import("./client.js").ClientOptions} ClientOptions */
/** @typedef {import("./client.js").UploadOptions} UploadOptions */
/** @typedef {import("./client.js").ResumeOptions} ResumeOptions */
/** @typedef {import("./client.js").WaitOptions} WaitOptions */
/** @typedef {import("./client.js").ListQuery} ListQuery */
/** @typedef {import("./client.js").Progress} Progress */
/** @typedef {import("./client.js").TokenSource} TokenSource */
/** @typedef {import("./client.js").UploadView} UploadView */
/** @typedef {import("./client.js").IssuedUpload} IssuedUpload */
/** @typedef {import("./client.js").ProfileView} ProfileView */
/** @typedef {import("./client.js").Download} Download */
/** @typedef {import("./client.js").UploadPage} UploadPage */
/** @typedef {import("./client.js").Status} Status */
/** @typedef {import("./wire.js").components} components */
/** @typedef {import("./wire.js").paths} paths */
