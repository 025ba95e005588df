/**
 * The gateway's public face for modules: `import { … } from "@jetpack/gateway"`.
 */
export { API_VERSION, createApp, createWorker, enforceRetention, type JetpackModule } from "./app";
export { newId } from "./crypto";
export {
  CHANGED,
  chunked,
  GuardFailed,
  guard,
  join,
  MAX_PARAMS,
  PROJECT,
  type Raw,
  raw,
  type Row,
  ScopedDb,
  Sql,
  sql,
  type SqlValue,
} from "./db";
export type { Bindings, GatewayApp, GatewayEnv, Principal, Variables } from "./env";
export {
  ApiError,
  badRequest,
  conflict,
  ErrorSchema,
  errorResponse,
  fieldOf,
  forbidden,
  fromZod,
  invalid,
  notFound,
} from "./errors";
export { type AuditRecord, auditStatement, MAX_BODY_BYTES, readOnly } from "./middleware";
export { actAs, projectOf, requireAdmin } from "./principal";
export {
  Identifier,
  ID_PATTERN,
  JsonObject,
  jsonBytes,
  jsonObject,
  jsonProblem,
  MAX_JSON_DEPTH,
  MAX_METADATA_BYTES,
  MAX_TEXT_CHARS,
  Str,
  TextOf,
  Timestamp,
  toIso,
  toMs,
  wellFormed,
} from "./schemas";
