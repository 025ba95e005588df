/**
 * Bodies over the 1 MiB request limit, in parts. The client splits the JSON
 * text of a big request (a batch create, an import) into parts of at most
 * 1 MiB, `PUT`s each to `/api/uploads/{upload_id}/{part}` (idempotent: a retry
 * rewrites the same part), then sends the real request with an empty body and
 * `Jetpack-Upload: <upload_id>; parts=<n>`. The gateway reassembles the body
 * before the route sees it, so a route needs nothing special, and the route's
 * write stays one transaction (all or nothing) however big the body was.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { GatewayDb, sql } from "./db";
import { ApiError, ErrorSchema, invalid } from "./errors";
import type { GatewayApp, GatewayEnv } from "./env";
import { projectOf } from "./principal";

/** Most parts one upload may have (64 MiB). */
export const MAX_UPLOAD_PARTS = 64;
const UPLOAD_ID = /^[A-Za-z0-9_-]{8,64}$/;
const HEADER = /^([A-Za-z0-9_-]{8,64});\s*parts=(\d{1,3})$/;

/** Register `PUT /api/uploads/{upload_id}/{part}`. */
export function registerUploadRoutes(app: GatewayApp): void {
  app.openapi(
    createRoute({
      method: "put",
      path: "/api/uploads/{upload_id}/{part}",
      summary: "Store one part (≤ 1 MiB) of a large request body",
      security: [{ bearer: [] }],
      request: {
        params: z.object({
          upload_id: z.string().regex(UPLOAD_ID),
          part: z.coerce.number().int().min(0).max(MAX_UPLOAD_PARTS - 1),
        }),
      },
      responses: {
        200: { content: { "application/json": { schema: z.object({ bytes: z.number().int() }) } }, description: "Stored." },
        401: { content: { "application/json": { schema: ErrorSchema } }, description: "No valid token." },
      },
    }),
    async (c) => {
      const { project } = projectOf(c);
      const { upload_id: uploadId, part } = c.req.valid("param");
      const body = await c.req.text();
      await new GatewayDb(c.env.DB).run(
        sql`INSERT INTO upload_parts (project, upload_id, part, body, created_at)
            VALUES (${project}, ${uploadId}, ${part}, ${body}, ${Date.now()})
            ON CONFLICT (project, upload_id, part) DO UPDATE SET body = excluded.body`,
      );
      return c.json({ bytes: body.length }, 200);
    },
  );
}

/** Reassemble the body of a request that names an upload. */
export const assembleUpload = (): MiddlewareHandler<GatewayEnv> => async (c, next) => {
  const header = c.req.header("Jetpack-Upload");
  if (header === undefined) return await next();
  const match = HEADER.exec(header.trim());
  const uploadId = match?.[1];
  const parts = Number(match?.[2] ?? "0");
  if (uploadId === undefined || parts < 1 || parts > MAX_UPLOAD_PARTS) {
    throw invalid("Jetpack-Upload", `expected "<upload id>; parts=<1..${MAX_UPLOAD_PARTS}>"`);
  }
  const { project } = projectOf(c);
  const gw = new GatewayDb(c.env.DB);
  const rows = await gw.all<{ part: number; body: string }>(
    sql`SELECT part, body FROM upload_parts WHERE project = ${project} AND upload_id = ${uploadId}
        AND part < ${parts} ORDER BY part`,
  );
  if (rows.length !== parts || rows.some((row, i) => row.part !== i)) {
    throw new ApiError(422, "invalid", `upload ${uploadId} has ${rows.length} of ${parts} parts`, "Jetpack-Upload");
  }
  const headers = new Headers(c.req.raw.headers);
  headers.delete("Content-Length");
  headers.set("Content-Type", "application/json");
  c.req.raw = new Request(c.req.raw.url, {
    method: c.req.raw.method,
    headers,
    body: rows.map((row) => row.body).join(""),
  });
  await next();
  c.get("deferred").push(
    gw.prepare(sql`DELETE FROM upload_parts WHERE project = ${project} AND upload_id = ${uploadId}`),
  );
};
