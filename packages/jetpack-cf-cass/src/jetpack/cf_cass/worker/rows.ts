/** Rows of a project's `memories` table ↔ memories on the wire (ISO times, metadata as JSON). */
import { toIso } from "@jetpack/gateway";
import type { MemoryEntry, MemoryTypeName } from "./schemas";

/** A row of `sql.ENTRY`. */
export interface EntryRow extends Record<string, SqlStorageValue> {
  seq: number;
  id: string;
  type: string;
  content: string;
  importance: number;
  metadata: string;
  has_embedding: number;
  embedding_model: string | null;
  created_at: number;
  last_accessed: number;
  access_count: number;
  version: number;
}

/** The entry the API answers with for a stored row. */
export function rowToEntry(row: EntryRow, score: number | null = null): MemoryEntry {
  const embedded = Number(row.has_embedding) === 1;
  return {
    id: row.id,
    type: row.type as MemoryTypeName,
    content: row.content,
    importance: Number(row.importance),
    metadata: JSON.parse(row.metadata || "{}") as Record<string, unknown>,
    has_embedding: embedded,
    embedding_model: embedded ? row.embedding_model : null,
    created_at: toIso(Number(row.created_at)) ?? "",
    last_accessed: toIso(Number(row.last_accessed)) ?? "",
    access_count: Number(row.access_count),
    version: Number(row.version),
    score,
  };
}

const CURSOR_PREFIX = "c1.";

function base64url(text: string): string {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** An opaque list cursor: the last seq of a page and the type filter it was made under. */
export function encodeCursor(seq: number, type: string | null): string {
  return CURSOR_PREFIX + base64url(JSON.stringify([seq, type]));
}

/** The seq a cursor points after, or why it is refused (issued elsewhere, or for another type). */
export function decodeCursor(cursor: string, type: string | null): number | string {
  const bad = "is not a cursor issued by list_memories of this store";
  if (!cursor.startsWith(CURSOR_PREFIX)) return bad;
  let decoded: unknown;
  try {
    const body = cursor.slice(CURSOR_PREFIX.length).replace(/-/g, "+").replace(/_/g, "/");
    decoded = JSON.parse(atob(body + "=".repeat((4 - (body.length % 4)) % 4)));
  } catch {
    return bad;
  }
  if (
    !Array.isArray(decoded) ||
    decoded.length !== 2 ||
    !Number.isSafeInteger(decoded[0]) ||
    (decoded[0] as number) < 0 ||
    !(decoded[1] === null || typeof decoded[1] === "string")
  ) {
    return bad;
  }
  if (decoded[1] !== type) return `was issued for type=${String(decoded[1])}, not type=${String(type)}`;
  return decoded[0] as number;
}
