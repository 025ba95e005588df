/**
 * zod building blocks shared by the gateway and the modules; each matches a
 * field type of the Python models in `jetpack.shared` (same names, same
 * limits), so the two sides refuse the same input.
 */
import { z } from "@hono/zod-openapi";

/** `jetpack.shared.ID_PATTERN`: ids of tasks, agents, projects. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

export const Identifier = z
  .string()
  .regex(ID_PATTERN, "must be 1-128 characters of letters, digits and ._:/-, starting alphanumeric");

/** A time on the wire: ISO 8601 with an offset (answers use `Z`, milliseconds). */
export const Timestamp = z.iso.datetime({ offset: true }).openapi({ example: "2026-12-01T09:30:00.000Z" });

/** Epoch milliseconds of an ISO time (sub-millisecond digits are dropped). */
export function toMs(iso: string): number {
  const match = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$/.exec(iso);
  if (match === null) return Date.parse(iso);
  const fraction = (match[2] ?? ".0").slice(1, 4).padEnd(3, "0");
  return Date.parse(`${match[1]}.${fraction}${match[3]}`);
}

/** ISO time of epoch milliseconds, or null. */
export function toIso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** `jetpack.shared.MAX_TEXT_CHARS`: longest free text (description, memory content, error). */
export const MAX_TEXT_CHARS = 200_000;
/** `jetpack.shared.MAX_METADATA_BYTES`: largest metadata object, as compact JSON. */
export const MAX_METADATA_BYTES = 64 * 1024;
/** `jetpack.shared.MAX_JSON_DEPTH`: deepest nesting accepted in a metadata, payload or result object. */
export const MAX_JSON_DEPTH = 32;

/** A string with no lone surrogate (it could not be stored as UTF-8). */
export const wellFormed = (s: string): boolean => s.isWellFormed();

/** A string that is valid Unicode (`jetpack.shared._base.text_problem`). */
export const Str = () => z.string().refine(wellFormed, "contains a lone surrogate (not valid Unicode)");

/** Length of `value` as compact JSON with non-ASCII escaped, as Python's `json.dumps` counts it. */
export function jsonBytes(value: unknown): number {
  const text = JSON.stringify(value) ?? "";
  let extra = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) extra += 5; // \uXXXX
  return text.length + extra;
}

/**
 * Why a parsed JSON value cannot be stored (`jetpack.shared._base.json_problem`),
 * with the dotted path of the offender, or null: an object or list at depth 32 or
 * more (the top level is depth 0), a lone surrogate in a string or key.
 * Iterative, so any depth gets an answer.
 */
export function jsonProblem(value: unknown): { path: string[]; message: string } | null {
  const stack: [unknown, number, string[]][] = [[value, 0, []]];
  while (stack.length > 0) {
    const [item, depth, path] = stack.pop() as [unknown, number, string[]];
    if (typeof item === "string") {
      if (!item.isWellFormed()) return { path, message: "contains a lone surrogate (not valid Unicode)" };
    } else if (item !== null && typeof item === "object") {
      if (depth >= MAX_JSON_DEPTH) {
        return { path, message: `nests objects and lists deeper than ${MAX_JSON_DEPTH} levels` };
      }
      const entries: [string, unknown][] = Array.isArray(item)
        ? item.map((child, i): [string, unknown] => [String(i), child])
        : Object.entries(item);
      for (const [key, child] of entries.reverse()) {
        if (!key.isWellFormed()) return { path: [...path, key], message: "key contains a lone surrogate" };
        stack.push([child, depth + 1, [...path, key]]);
      }
    }
  }
  return null;
}

/** A JSON object of at most `maxBytes` as JSON, at most 32 levels deep, valid Unicode throughout. */
export const jsonObject = (maxBytes: number) =>
  z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
    const problem = jsonProblem(value);
    if (problem !== null) {
      ctx.addIssue({ code: "custom", message: problem.message, path: problem.path });
      return;
    }
    if (jsonBytes(value) > maxBytes) {
      ctx.addIssue({ code: "custom", message: `is larger than ${maxBytes} bytes as JSON` });
    }
  });

/** A string with no lone surrogate, of at most `max` characters (code points, as Python counts). */
export const TextOf = (max: number) =>
  z
    .string()
    .refine(wellFormed, "contains a lone surrogate (not valid Unicode)")
    .refine((s) => s.length <= max || [...s].length <= max, `must be at most ${max} characters`);

/** `jetpack.shared.JsonObject`: metadata of tasks and memories (64 KiB). */
export const JsonObject = jsonObject(MAX_METADATA_BYTES);

/** Plain `{ "ok": true }`-style answers. */
export const Flag = (name: string) => z.object({ [name]: z.boolean() });
