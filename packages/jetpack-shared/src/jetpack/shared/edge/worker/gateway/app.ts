/**
 * The app factory: the gateway's middlewares and routes, then every module's
 * routes, behind one `fetch`; plus the cron handler that enforces retention.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { GatewayDb, sql } from "./db";
import { ApiError, ErrorSchema, errorResponse, fromZod, onError } from "./errors";
import type { Bindings, GatewayApp, GatewayEnv } from "./env";
import { audit, auth, bodyLimit, cors, idempotency, rateLimit, requestId } from "./middleware";
import { registerTokenRoutes } from "./tokens";
import { assembleUpload, registerUploadRoutes } from "./uploads";

/** Bumped when a route changes incompatibly; the Python client checks it once. */
export const API_VERSION = 1;

/** What a cf package contributes (its `worker/routes.ts` default export). */
export interface JetpackModule {
  /** Short name, as in the `jetpack.edge` entry point (`tasks`, `mail`, `memory`). */
  readonly name: string;
  /** Add the module's routes; every handler reaches D1 through `c.var.db`. */
  register(app: GatewayApp): void;
  /** Periodic clean-up (retention), run by the cron trigger. */
  scheduled?(env: Bindings, now: number): Promise<void>;
  /**
   * True when every route of the module reaches storage only through
   * `c.var.db` (D1, no Durable Object): the gateway then records a request's
   * `Idempotency-Key` inside the route's first D1 call instead of a call of
   * its own (one round trip less per keyed mutation).
   */
  readonly keyInFirstCall?: boolean;
}

const Health = z
  .object({
    status: z.literal("ok"),
    api_version: z.number().int(),
    modules: z.array(z.string()),
    time: z.string(),
  })
  .openapi("Health");

const DAY_MS = 86_400_000;

/** Delete audit rows and idempotency keys older than the retention period. */
export async function enforceRetention(env: Bindings, now: number): Promise<void> {
  const days = Number(env.JETPACK_RETENTION_DAYS ?? "30");
  const cutoff = now - (Number.isFinite(days) && days > 0 ? days : 30) * DAY_MS;
  const gw = new GatewayDb(env.DB);
  await gw.run(sql`DELETE FROM audit_log WHERE at < ${cutoff}`);
  // Idempotency keys only need to outlive a client's retries: one day at most.
  await gw.run(sql`DELETE FROM idempotency_keys WHERE created_at < ${Math.max(cutoff, now - DAY_MS)}`);
  await gw.run(sql`DELETE FROM upload_parts WHERE created_at < ${now - DAY_MS}`);
}

/** Build the Hono app for these modules. */
export function createApp(modules: readonly JetpackModule[]): GatewayApp {
  const app: GatewayApp = new OpenAPIHono<GatewayEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const where = result.target === "json" ? "body" : result.target;
        return errorResponse(c, fromZod(result.error, where));
      }
      return undefined;
    },
  });
  app.onError(onError);
  const keyInFirstCall = new Set<unknown>();
  app.notFound((c) => errorResponse(c, new ApiError(404, "not_found", `no route ${c.req.method} ${c.req.path}`)));
  app.use(
    "*",
    requestId(),
    audit(),
    cors(),
    bodyLimit(),
    auth(),
    rateLimit(),
    idempotency(keyInFirstCall),
    assembleUpload(),
  );

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/health",
      summary: "Liveness, API version and installed modules (no token needed)",
      responses: {
        200: { content: { "application/json": { schema: Health } }, description: "Up." },
        500: { content: { "application/json": { schema: ErrorSchema } }, description: "Down." },
      },
    }),
    (c) =>
      c.json(
        {
          status: "ok" as const,
          api_version: API_VERSION,
          modules: modules.map((m) => m.name),
          time: new Date().toISOString(),
        },
        200,
      ),
  );
  registerTokenRoutes(app);
  registerUploadRoutes(app);
  for (const module of modules) {
    const before = app.routes.length;
    module.register(app);
    if (module.keyInFirstCall === true) for (const route of app.routes.slice(before)) keyInFirstCall.add(route.handler);
  }
  app.doc31("/api/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Jetpack Worker",
      version: String(API_VERSION),
      description: `Modules: ${modules.map((m) => m.name).join(", ") || "none"}.`,
    },
  });
  return app;
}

/** The Worker's default export: `fetch` from the app, `scheduled` for retention. */
export function createWorker(modules: readonly JetpackModule[]): ExportedHandler<Bindings> {
  const app = createApp(modules);
  return {
    fetch: (request, env, ctx) => app.fetch(request, env, ctx),
    scheduled: async (_controller, env, ctx) => {
      const now = Date.now();
      ctx.waitUntil(enforceRetention(env, now));
      for (const module of modules) {
        if (module.scheduled !== undefined) ctx.waitUntil(module.scheduled(env, now));
      }
    },
  };
}
