/**
 * One error shape for every refusal: `{"error": {"code", "message", "field"?}}`,
 * sent with the request's `X-Request-Id`. The Python client maps the status
 * back to its typed errors (401/403 → AuthError, 404 → NotFoundError,
 * 409 → ConflictError, 413/422 → ValidationError naming `field`, 429/5xx →
 * UnavailableError after retries).
 */
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import type { GatewayEnv } from "./env";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "not_found" }),
      message: z.string(),
      field: z.string().optional().openapi({ description: "The offending input, dotted." }),
    }),
  })
  .openapi("Error");

export type ErrorBody = z.infer<typeof ErrorSchema>;

/** A refusal a route or middleware raises on purpose. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const badRequest = (message: string, field?: string): ApiError =>
  new ApiError(400, "bad_request", message, field);
export const invalid = (field: string, message: string): ApiError =>
  new ApiError(422, "invalid", message, field);
export const notFound = (kind: string, id: string): ApiError =>
  new ApiError(404, "not_found", `${kind} ${JSON.stringify(id)} not found`);
export const conflict = (message: string, code = "conflict"): ApiError =>
  new ApiError(409, code, message);
export const forbidden = (message: string): ApiError => new ApiError(403, "forbidden", message);
export const unauthorized = (message: string): ApiError =>
  new ApiError(401, "unauthorized", message, undefined, { "WWW-Authenticate": "Bearer" });

/** The JSON error response for `err`, with the request id. */
export function errorResponse(c: Context<GatewayEnv>, err: ApiError): Response {
  const body: ErrorBody = { error: { code: err.code, message: err.message } };
  if (err.field !== undefined) body.error.field = err.field;
  const headers: Record<string, string> = { ...err.headers };
  c.set("errorCode", err.code);
  const requestId = c.get("requestId");
  if (requestId) headers["X-Request-Id"] = requestId;
  return c.json(body, err.status, headers);
}

/** Dotted path of a zod issue, as the Python models name fields (`metadata.a.0`). */
export function fieldOf(path: readonly PropertyKey[], fallback: string): string {
  return path.length ? path.map(String).join(".") : fallback;
}

/** The first problem of a failed zod validation as a 422 naming the field. */
export function fromZod(error: ZodError, fallback = "body"): ApiError {
  const issue = error.issues[0];
  if (issue === undefined) return invalid(fallback, "invalid input");
  let path: PropertyKey[] = [...issue.path];
  if (issue.code === "unrecognized_keys" && issue.keys.length) path = [...path, issue.keys[0] ?? ""];
  return invalid(fieldOf(path, fallback), issue.message);
}

/** app.onError: ApiError as is, Hono's own exceptions mapped, anything else a logged 500. */
export function onError(err: Error, c: Context<GatewayEnv>): Response {
  if (err instanceof ApiError) return errorResponse(c, err);
  if (err instanceof HTTPException) {
    const status = err.status;
    if (status === 400 && /json/i.test(err.message)) {
      return errorResponse(c, new ApiError(400, "bad_json", "the body is not valid JSON", "body"));
    }
    if (status === 413) return errorResponse(c, tooLarge());
    const code = status === 401 ? "unauthorized" : status === 404 ? "not_found" : "bad_request";
    return errorResponse(c, new ApiError(status as ContentfulStatusCode, code, err.message));
  }
  console.error(`request ${c.get("requestId") ?? "?"} failed:`, err);
  return errorResponse(c, new ApiError(500, "internal", "internal error; see the Worker's logs"));
}

export const tooLarge = (): ApiError =>
  new ApiError(413, "too_large", "the body is larger than 1 MiB; split the request", "body");
