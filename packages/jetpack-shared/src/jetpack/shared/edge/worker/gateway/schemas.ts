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

/** Plain `{ "ok": true }`-style answers. */
export const Flag = (name: string) => z.object({ [name]: z.boolean() });
