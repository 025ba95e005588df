/** Guards routes use on the caller established by the auth middleware. */
import type { Context } from "hono";
import { ApiError, forbidden } from "./errors";
import type { GatewayEnv, Principal } from "./env";

type ProjectPrincipal = Extract<Principal, { kind: "project" }>;

/** The calling project token; the admin token is refused (it owns no project's data). */
export function projectOf(c: Context<GatewayEnv>): ProjectPrincipal {
  const principal = c.get("principal");
  if (principal === null) throw new ApiError(401, "unauthorized", "missing bearer token");
  if (principal.kind !== "project") {
    throw forbidden("the admin token manages tokens and reads the audit log; use a project token");
  }
  return principal;
}

/**
 * Check that the caller may act as `agentId`: any agent for a project token,
 * only its own for an agent-bound token (403 otherwise). Records the agent
 * in the audit row.
 */
export function actAs(c: Context<GatewayEnv>, agentId: string): void {
  const principal = projectOf(c);
  if (principal.agentId !== null && principal.agentId !== agentId) {
    throw forbidden(
      `this token acts only as agent ${JSON.stringify(principal.agentId)}, not ${JSON.stringify(agentId)}`,
    );
  }
  c.set("auditAgent", agentId);
}

/** The admin token, or 403. */
export function requireAdmin(c: Context<GatewayEnv>): void {
  const principal = c.get("principal");
  if (principal?.kind !== "admin") throw forbidden("this route needs the admin token");
}
