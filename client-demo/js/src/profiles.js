// Client-side checks against what GET /profiles says a profile accepts. They save a round trip
// and say why early; the API checks the same again, and its answer is the one that counts.
import { ProfileCheckError } from "./errors.js";

/** @typedef {import("./wire.js").components["schemas"]["ProfileView"]} ProfileView */

/**
 * Whether `contentType` matches one of the profile's content types (`image/*` wildcards, as the API).
 * @param {ProfileView} profile
 * @param {string} contentType
 */
export function accepts(profile, contentType) {
  const type = contentType.toLowerCase();
  return profile.contentTypes.some((pattern) =>
    pattern.endsWith("/*") ? type.startsWith(pattern.slice(0, -1)) : pattern === type,
  );
}

/**
 * What the profile would refuse about a file of `size` bytes declared as `contentType`, or null.
 * @param {ProfileView} profile
 * @param {{size: number, contentType: string}} file
 * @returns {ProfileCheckError | null}
 */
export function checkAgainstProfile(profile, { size, contentType }) {
  if (!accepts(profile, contentType)) {
    return new ProfileCheckError(415, "Content type not allowed", `profile ${profile.name} does not accept ${contentType}`);
  }
  if (size > profile.maxSize) {
    const detail = `${size} bytes is over the ${profile.name} profile's limit of ${profile.maxSize} bytes`;
    return new ProfileCheckError(413, "Upload too large", detail);
  }
  if (size < profile.minSize) {
    return new ProfileCheckError(422, "Request failed validation", `${size} bytes is under the ${profile.name} minimum of ${profile.minSize} bytes`);
  }
  return null;
}
