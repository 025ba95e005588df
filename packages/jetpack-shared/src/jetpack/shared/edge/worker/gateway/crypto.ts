/** Tokens, hashes and ids: random from the Web Crypto API, hashes in SHA-256. */

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A new bearer token: `jp_` + 256 random bits. Shown once; only its hash is kept. */
export function newToken(): string {
  return `jp_${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
}

const DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz";

/** `prefix-` + base36 of a random 64-bit value (as `jetpack.shared.rules.new_id`). */
export function newId(prefix: string): string {
  const words = crypto.getRandomValues(new Uint32Array(2));
  let value = (BigInt(words[0] ?? 0) << 32n) | BigInt(words[1] ?? 0);
  if (value === 0n) return `${prefix}-0`;
  let out = "";
  while (value > 0n) {
    out = DIGITS[Number(value % 36n)] + out;
    value /= 36n;
  }
  return `${prefix}-${out}`;
}

/** SHA-256 of a string. */
export async function sha256(text: string): Promise<ArrayBuffer> {
  return await crypto.subtle.digest("SHA-256", encoder.encode(text));
}

/** Hex of a digest. */
export function hexOf(digest: ArrayBuffer): string {
  let out = "";
  for (const byte of new Uint8Array(digest)) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** Hex SHA-256 of a string. */
export async function sha256Hex(text: string): Promise<string> {
  return hexOf(await sha256(text));
}

/** Digests of the secrets tokens are compared with (the admin secret), per isolate. */
const secretDigests = new Map<string, ArrayBuffer>();

/**
 * Whether `digest` (the SHA-256 of a presented token) is that of `secret`,
 * compared in constant time. The secret's digest is computed once per isolate,
 * so checking a token costs one digest, which also serves its lookup.
 */
export async function digestIsSecret(digest: ArrayBuffer, secret: string): Promise<boolean> {
  let known = secretDigests.get(secret);
  if (known === undefined) {
    known = await sha256(secret);
    if (secretDigests.size >= 4) secretDigests.clear();
    secretDigests.set(secret, known);
  }
  return crypto.subtle.timingSafeEqual(digest, known);
}
