// What the tests share: the stack under test, files to upload, a fetch that watches (or meddles).
import { createHash } from "node:crypto";
import { deflateSync } from "node:zlib";

import { createClient } from "../src/index.js";

export const MiB = 1024 * 1024;

/** The local stack the pytest runner started (tests/e2e/test_js_client.py). */
export function apiUrl() {
  const url = process.env.DIRECTUPLOAD_API_URL;
  if (!url) throw new Error("DIRECTUPLOAD_API_URL is not set: run these through tests/e2e/test_js_client.py");
  return url;
}

/**
 * @param {Partial<import("../src/index.js").ClientOptions>} [options]
 */
export function client(options = {}) {
  return createClient({ baseUrl: apiUrl(), ...options });
}

/** @param {Uint8Array | ArrayBuffer} data */
export function sha256(data) {
  return createHash("sha256").update(new Uint8Array(data)).digest("hex");
}

/** `size` bytes no sniffer recognises, different for every `seed`. */
export function bytes(size, seed = 1) {
  const out = new Uint8Array(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(/** @type {Buffer} */ buffer) {
  let c = 0xffffffff;
  for (const byte of buffer) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(/** @type {string} */ type, /** @type {Buffer} */ data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A real RGB PNG of `width` x `height`, a colour gradient. */
export function png(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) rows.set([x * 4, y * 4, 200], y * (width * 3 + 1) + 1 + x * 3);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Uint8Array(
    Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]),
  );
}

/**
 * The global fetch, watched: every request is logged, the part PUTs in flight counted, and
 * `meddle` may answer a request itself (as S3 refusing it would).
 * @param {{meddle?: (request: {method: string, url: string, body: any, headers?: Record<string, string>}) => Response | undefined}} [options]
 */
export function watchedFetch({ meddle } = {}) {
  const log = /** @type {{method: string, url: string, body: any, headers?: Record<string, string>}[]} */ ([]);
  const state = { inFlight: 0, maxInFlight: 0, log };
  /** @type {typeof fetch} */
  const fetchImpl = async (input, init = {}) => {
    const url = String(input);
    const method = init.method || "GET";
    const body = typeof init.body === "string" ? JSON.parse(init.body) : init.body;
    const headers = /** @type {Record<string, string> | undefined} */ (init.headers);
    const request = { method, url, body, headers };
    log.push(request);
    const answer = meddle?.(request);
    if (answer) return answer;
    const part = method === "PUT" && url.includes("partNumber=");
    if (part) state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
    try {
      return await fetch(input, init);
    } finally {
      if (part) state.inFlight--;
    }
  };
  return { fetch: fetchImpl, state };
}

/** The part number a part URL is for. */
export function partNumberOf(/** @type {string} */ url) {
  return Number(new URL(url).searchParams.get("partNumber"));
}
