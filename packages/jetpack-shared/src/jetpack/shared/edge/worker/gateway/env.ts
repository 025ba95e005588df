/**
 * What every request carries through the gateway: the Worker's bindings and
 * the per-request variables the middlewares set.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { DbTimer, ScopedDb } from "./db";

/** Bindings and vars of the Worker (wrangler.jsonc); modules read their own by name. */
export interface Bindings {
  /** The D1 database of every D1-backed module (and of the gateway's tokens and audit log). */
  readonly DB: D1Database;
  /** Per-token request budget (Workers Rate Limiting binding). */
  readonly RATE_LIMITER?: RateLimit;
  /** Secret: the admin token. Without it only project tokens work. */
  readonly JETPACK_ADMIN_TOKEN?: string;
  /** Comma-separated origins allowed cross-origin; empty = none. */
  readonly JETPACK_CORS_ORIGINS?: string;
  /** Seconds a throttled caller should wait (the rate limiter's period). */
  readonly JETPACK_RATE_LIMIT_PERIOD?: string;
  /** Days audit rows and idempotency keys are kept. */
  readonly JETPACK_RETENTION_DAYS?: string;
  /** Other modules' bindings (Durable Object namespaces, Vectorize, AI...). */
  readonly [binding: string]: unknown;
}

/** Who is calling, established by the auth middleware. */
export type Principal =
  | { readonly kind: "admin"; readonly tokenId: "admin" }
  | {
      readonly kind: "project";
      readonly tokenId: string;
      readonly project: string;
      /** Set for agent-bound tokens: the only agent this caller may act as. */
      readonly agentId: string | null;
    };

/** Per-request variables. */
export interface Variables {
  requestId: string;
  principal: Principal | null;
  /** The project's door to D1: every statement scoped by project (project routes only). */
  db: ScopedDb;
  /** Set by a route that wants its audit row to carry an agent id. */
  auditAgent: string | null;
  /**
   * Set (by the `readOnly()` middleware) on a POST that only reads, such as a
   * search whose arguments travel in the body: it is audited only if refused.
   */
  readOnly: boolean;
  /** The code of the error response, for the audit row. */
  errorCode: string | null;
  /**
   * Gateway writes that may land just after the response (the audit row, an
   * idempotency key's answer): one D1 batch in `waitUntil`, off the request's path.
   */
  deferred: D1PreparedStatement[];
  /** D1 time of this request so far (`Server-Timing: db`). */
  dbTimer: DbTimer;
}

export interface GatewayEnv {
  Bindings: Bindings;
  Variables: Variables;
}

/** The app every module registers its routes on. */
export type GatewayApp = OpenAPIHono<GatewayEnv>;
