/** Rows of the `tasks` table ↔ tasks on the wire (ISO times, JSON arrays as arrays). */
import { toIso, toMs } from "@jetpack/gateway";
import { type Column, COLUMNS } from "./sql";
import type { Task } from "./schemas";

/** A stored row; statements that put tasks back in the queue also return `needs_settle`. */
export type TaskRow = Record<Column, unknown> & { needs_settle?: unknown };

const JSON_COLUMNS = ["dependencies", "blockers", "required_skills", "tags", "target_branches"] as const;
const TIME_COLUMNS = [
  "last_attempt_at",
  "created_at",
  "updated_at",
  "completed_at",
  "not_before",
  "claim_expires_at",
] as const;

function num(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/** A stored row as the Task the API answers with. */
export function rowToTask(row: TaskRow): Task {
  const out: Record<string, unknown> = {};
  for (const column of COLUMNS) out[column] = row[column];
  for (const column of JSON_COLUMNS) out[column] = JSON.parse(String(row[column] ?? "[]"));
  out.metadata = JSON.parse(String(row.metadata ?? "{}"));
  for (const column of TIME_COLUMNS) out[column] = toIso(num(row[column]));
  for (const column of ["estimated_minutes", "actual_minutes", "retry_count", "max_retries", "version"] as const) {
    out[column] = num(row[column]);
  }
  return out as Task;
}

/** A Task as the JSON object `insertRows` reads (times in ms, arrays nested). */
export function taskToRecord(task: Task): Record<Column, unknown> {
  const record: Record<string, unknown> = { ...task };
  for (const column of TIME_COLUMNS) {
    const value = task[column];
    record[column] = value === null ? null : toMs(value);
  }
  return record as Record<Column, unknown>;
}

/** One wire value as its column stores it (JSON text, epoch ms); null lists and metadata stored empty. */
export function toColumn(column: Column, value: unknown): string | number | null {
  if ((JSON_COLUMNS as readonly string[]).includes(column)) return JSON.stringify(value ?? []);
  if (column === "metadata") return JSON.stringify(value ?? {});
  if ((TIME_COLUMNS as readonly string[]).includes(column)) return typeof value === "string" ? toMs(value) : null;
  return value as string | number | null;
}
