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

/** Hex SHA-256 of a string. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compare two secrets in constant time (of their SHA-256 digests). */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(da, db);
}
