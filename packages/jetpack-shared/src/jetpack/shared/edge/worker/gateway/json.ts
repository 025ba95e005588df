/**
 * JSON bodies the Python models accept, checked the same way on the Worker:
 * `jetpack.shared._base.json_problem` (nesting, lone surrogates) and the size
 * as Python's compact `json.dumps` counts it (non-ASCII escaped).
 */
import { z } from "@hono/zod-openapi";

/** Deepest nesting accepted in a JSON object field (`jetpack.shared.MAX_JSON_DEPTH`). */
export const MAX_JSON_DEPTH = 32;

/** Length of `value` as compact JSON with non-ASCII escaped, as Python's `json.dumps` counts it. */
export function jsonBytes(value: unknown): number {
  const text = JSON.stringify(value) ?? "";
  let extra = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) extra += 5; // \uXXXX
  return text.length + extra;
}

/**
 * Why a parsed JSON value cannot be stored, with the dotted path of the
 * offender, or null: an object or list at depth 32 or more (the top level is
 * depth 0), a lone surrogate in a string or key. Iterative, so any depth gets
 * an answer.
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
      for (const [key, child] of entries) {
        if (!key.isWellFormed()) return { path: [...path, key], message: "key contains a lone surrogate" };
        stack.push([child, depth + 1, [...path, key]]);
      }
    }
  }
  return null;
}

/** A JSON object of at most `maxBytes`, at most 32 levels deep, valid Unicode throughout. */
export function JsonObjectOf(maxBytes: number) {
  return z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
    const problem = jsonProblem(value);
    if (problem !== null) {
      ctx.addIssue({ code: "custom", message: problem.message, path: problem.path });
      return;
    }
    if (jsonBytes(value) > maxBytes) {
      ctx.addIssue({ code: "custom", message: `is larger than ${maxBytes} bytes as JSON` });
    }
  });
}

/** A string with no lone surrogate, of at most `max` characters (code points, as Python counts). */
export function TextOf(max: number) {
  return z
    .string()
    .refine((s) => s.isWellFormed(), "contains a lone surrogate (not valid Unicode)")
    .refine((s) => s.length <= max || [...s].length <= max, `must be at most ${max} characters`);
}
