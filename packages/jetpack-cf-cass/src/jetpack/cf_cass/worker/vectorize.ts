/**
 * What memory uses when it is bound, and only then: a Vectorize index (the
 * `VECTORIZE` binding of a deployed Worker) and Workers AI (`AI`). Neither
 * runs locally, so a test-only build binds stand-ins with the same API
 * instead (`FAKE_VECTORIZE`, `FAKE_AI`: `fakes.ts`); nothing else changes.
 *
 * In Vectorize each project is a namespace and each vector id is scoped by
 * the project (`<project key>.<seq>`), so no query, upsert or delete of one
 * project can reach another's vectors, even though ids are index-wide.
 */
import type { Bindings } from "@jetpack/gateway";

/** The Workers AI embedding model (384 dimensions) the Worker embeds with. */
export const AI_MODEL = "@cf/baai/bge-small-en-v1.5";
/** Texts per Workers AI call. */
const AI_BATCH = 100;
/** Vectorize: most results of a query that returns no values or metadata. */
export const VECTORIZE_TOP_K = 100;
/** Vectorize: most vectors of one upsert from a Worker. */
export const VECTORIZE_BATCH = 1000;
/** Ids per `getByIds` call. */
export const VECTORIZE_GET_BATCH = 20;
/** Vectorize: longest namespace and vector id, in bytes. */
const VECTORIZE_MAX_ID = 64;

/** The part of the Vectorize binding's API memory uses. */
export interface VectorIndexApi {
  upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation>;
  deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation>;
  getByIds(ids: string[]): Promise<VectorizeVector[]>;
  query(vector: Float32Array | number[], options?: VectorizeQueryOptions): Promise<VectorizeMatches>;
  describe(): Promise<VectorizeIndexInfo>;
}

/** The part of the Workers AI binding's API memory uses. */
export interface AiApi {
  run(model: string, inputs: { text: string[] }): Promise<unknown>;
}

/** The memory module's bindings (beside the gateway's). */
export interface MemoryEnv extends Bindings {
  readonly MEMORY: DurableObjectNamespace;
  readonly VECTORIZE?: Vectorize;
  readonly AI?: Ai;
  /** Test builds only: the Vectorize stand-in (a Durable Object per index). */
  readonly FAKE_VECTORIZE?: DurableObjectNamespace;
  /** Test builds only: the Workers AI stand-in. */
  readonly FAKE_AI?: DurableObjectNamespace;
  /** Dimensions of the bound Vectorize index (set by the build). */
  readonly JETPACK_VECTORIZE_DIMENSIONS?: string;
  readonly JETPACK_VECTORIZE_INDEX?: string;
}

/** The bound Vectorize index (or its stand-in) and its dimensions, or null. */
export function vectorIndexOf(env: MemoryEnv): { api: VectorIndexApi; dimensions: number } | null {
  const dimensions = Number(env.JETPACK_VECTORIZE_DIMENSIONS ?? "0");
  if (env.VECTORIZE !== undefined) return { api: env.VECTORIZE, dimensions };
  const fake = env.FAKE_VECTORIZE;
  if (fake === undefined) return null;
  const stub = fake.get(fake.idFromName(env.JETPACK_VECTORIZE_INDEX ?? "jetpack-memory"));
  return { api: stub as unknown as VectorIndexApi, dimensions };
}

/** The bound Workers AI (or its stand-in), or null. */
export function aiOf(env: MemoryEnv): AiApi | null {
  if (env.AI !== undefined) return env.AI as unknown as AiApi;
  const fake = env.FAKE_AI;
  if (fake === undefined) return null;
  return fake.get(fake.idFromName("ai")) as unknown as AiApi;
}

/** Embed texts with Workers AI's {@link AI_MODEL}: one vector per text, checked. */
export async function embedTexts(ai: AiApi, texts: readonly string[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let i = 0; i < texts.length; i += AI_BATCH) {
    const chunk = texts.slice(i, i + AI_BATCH);
    const answer = (await ai.run(AI_MODEL, { text: chunk })) as { data?: unknown };
    const data = answer.data;
    if (!Array.isArray(data) || data.length !== chunk.length) {
      throw new Error(`Workers AI returned ${Array.isArray(data) ? data.length : "no"} vectors for ${chunk.length} texts`);
    }
    for (const row of data) {
      if (!Array.isArray(row) || !row.every((v) => typeof v === "number" && Number.isFinite(v))) {
        throw new Error("Workers AI returned a vector that is not a list of finite numbers");
      }
      out.push(Float32Array.from(row as number[]));
    }
  }
  return out;
}

async function sha256Base64url(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  let raw = "";
  for (const byte of digest) raw += String.fromCharCode(byte);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The project's Vectorize namespace: its name, or `~` + a hash when longer than 64 bytes. */
export async function namespaceOf(project: string): Promise<string> {
  if (project.length <= VECTORIZE_MAX_ID) return project; // project names are ASCII
  return `~${(await sha256Base64url(project)).slice(0, 40)}`;
}

/** The prefix of the project's vector ids: 24 characters of a hash of its name. */
export async function projectKey(project: string): Promise<string> {
  return (await sha256Base64url(`jetpack-memory\n${project}`)).slice(0, 24);
}

/** The Vectorize id of a memory: `<project key>.<seq in base 36>` (at most 37 bytes). */
export const vectorId = (key: string, seq: number): string => `${key}.${seq.toString(36)}`;

/** The seq of a vector id of this project, or null. */
export function seqOf(key: string, id: string): number | null {
  if (!id.startsWith(`${key}.`)) return null;
  const seq = Number.parseInt(id.slice(key.length + 1), 36);
  return Number.isSafeInteger(seq) ? seq : null;
}
