/**
 * The one door to D1. Every statement a module runs is a `sql` template that
 * names the project scope with the `PROJECT` marker; {@link ScopedDb} binds it
 * to the caller's project and refuses a statement without it, so no route can
 * forget the scope. Values become numbered parameters (`?1`, `?2`…), never
 * text, and a statement over D1's 100-parameter cap is refused before it
 * reaches D1; {@link chunked} splits row lists to stay under it.
 */
import { ApiError } from "./errors";

/** Marks where the caller's project goes in a statement. */
export const PROJECT: unique symbol = Symbol("project");

/** What a statement may bind. */
export type SqlValue = string | number | null | ArrayBuffer;

type Part = SqlValue | typeof PROJECT | Sql | Raw;

/** D1's limit of bound parameters per statement. */
export const MAX_PARAMS = 100;

/** Trusted SQL text (column lists, keywords) from constants, never from input. */
export class Raw {
  constructor(readonly text: string) {}
}

/** A SQL fragment and the values bound into it. */
export class Sql {
  constructor(
    readonly strings: readonly string[],
    readonly parts: readonly Part[],
  ) {}

  /** True when the fragment (or one nested in it) carries the project marker. */
  get scoped(): boolean {
    return this.parts.some((p) => p === PROJECT || (p instanceof Sql && p.scoped));
  }
}

/** Build a fragment: `sql\`SELECT … WHERE project = ${PROJECT} AND id = ${id}\``. */
export function sql(strings: TemplateStringsArray, ...parts: Part[]): Sql {
  return new Sql([...strings], parts);
}

/** Trusted text for a template hole. */
export const raw = (text: string): Raw => new Raw(text);

/** Join fragments with a separator (`, ` by default). */
export function join(items: readonly Sql[], separator = ", "): Sql {
  if (items.length === 0) return sql``;
  const strings = ["", ...items.slice(1).map(() => separator), ""];
  return new Sql(strings, items);
}

/** Text and parameters of a fragment; the project (if any) is always `?1`. */
export function compile(query: Sql, project: string | null): { text: string; params: SqlValue[] } {
  const params: SqlValue[] = [];
  if (project !== null) params.push(project);
  const walk = (q: Sql): string => {
    let text = q.strings[0] ?? "";
    q.parts.forEach((part, i) => {
      if (part === PROJECT) {
        if (project === null) throw new Error("a scoped statement needs a project");
        text += "?1";
      } else if (part instanceof Sql) {
        text += walk(part);
      } else if (part instanceof Raw) {
        text += part.text;
      } else {
        params.push(part);
        text += `?${params.length}`;
      }
      text += q.strings[i + 1] ?? "";
    });
    return text;
  };
  const text = walk(query);
  if (params.length > MAX_PARAMS) {
    throw new Error(`statement binds ${params.length} parameters; D1 allows ${MAX_PARAMS}`);
  }
  return { text, params };
}

/** Split `rows` into groups that each bind at most `budget` parameters of `perRow` each. */
export function chunked<T>(rows: readonly T[], perRow: number, budget = MAX_PARAMS - 1): T[][] {
  const size = Math.max(1, Math.floor(budget / Math.max(1, perRow)));
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

/**
 * In a batch: abort the whole batch (all or nothing) unless the statement
 * just before changed at least one row. The batch then fails with
 * {@link GuardFailed}.
 */
export const CHANGED: unique symbol = Symbol("changed");

/** The error a batch fails with when a {@link CHANGED} guard trips. */
export class GuardFailed extends Error {
  constructor() {
    super("a guard of the batch tripped (a row changed meanwhile); the batch was rolled back");
    this.name = "GuardFailed";
  }
}

const GUARD_SQL = "INSERT INTO batch_guard (ok) SELECT 0 WHERE changes() = 0";

/**
 * In a batch: abort the whole batch (all or nothing) when `condition` holds,
 * e.g. when a row a decision read has changed since (optimistic concurrency).
 * The batch then fails with {@link GuardFailed}. `condition` must carry the
 * project scope like any module statement.
 */
export const guard = (condition: Sql): Sql => sql`INSERT INTO batch_guard (ok) SELECT 0 WHERE ${condition}`;

/**
 * A repeat: this request's `Idempotency-Key` was already recorded when its
 * first D1 call that writes tried to record it (see {@link ScopedDb.recordFirst}).
 * Nothing of that call was written. Answered 409 `in_progress` unless the gateway
 * finds the first answer to replay.
 */
export class KeyTaken extends ApiError {
  constructor() {
    super(409, "in_progress", "a request with this Idempotency-Key ran or is running; retry");
    this.name = "KeyTaken";
  }
}

const KEY_TAKEN = /UNIQUE constraint failed: idempotency_keys\./;

/** Whether a D1 error is the guard's CHECK failure. */
export function isGuardFailure(err: unknown): boolean {
  return err instanceof Error && /CHECK constraint failed: ok/.test(err.message);
}

const WRITE = /\b(INSERT|UPDATE|DELETE|REPLACE)\b/i;

/**
 * Whether a statement may write. Its text is trusted SQL only (values are
 * bound parameters, never text), so a keyword in it is a statement keyword.
 */
function writes(query: Sql): boolean {
  const walk = (q: Sql): boolean =>
    q.strings.some((text) => WRITE.test(text)) ||
    q.parts.some((p) => (p instanceof Sql ? walk(p) : p instanceof Raw && WRITE.test(p.text)));
  return walk(query);
}

/** Time a request spent waiting on D1 (reported in `Server-Timing: db`). */
export class DbTimer {
  ms = 0;
  calls = 0;

  async time<T>(work: Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work;
    } finally {
      this.ms += performance.now() - started;
      this.calls += 1;
    }
  }
}

/** Result rows of a statement, typed by the caller. */
export type Row = Record<string, unknown>;

/**
 * D1 for one project. Modules receive it as `c.var.db`; it is the only way
 * they reach D1.
 */
export class ScopedDb {
  private lead: D1PreparedStatement | null = null;

  constructor(
    readonly d1: D1Database,
    readonly project: string,
    private readonly timer: DbTimer = new DbTimer(),
  ) {}

  /**
   * The gateway's: run `statement` (recording the request's idempotency key)
   * with this request's first D1 call that writes, in one batch with it (all
   * or nothing). Reads before it go without it, so a request that dies before
   * writing leaves no key behind (its retry runs at once, not after the key's
   * pending time). Its unique-key failure is a {@link KeyTaken}.
   */
  recordFirst(statement: D1PreparedStatement): void {
    this.lead = statement;
  }

  /** True while {@link recordFirst}'s statement has not run yet (nothing written so far). */
  get leadPending(): boolean {
    return this.lead !== null;
  }

  /**
   * One statement. A write while a key is pending goes as a batch of one, which
   * carries the key with it (see {@link batch}).
   */
  private async one(query: Sql): Promise<D1Result<Row>> {
    if (this.lead !== null && writes(query)) {
      const [result] = await this.batch([query]);
      if (result === undefined) throw new Error("D1 answered a batch without results");
      return result;
    }
    return await this.timer.time(this.prepare(query).all<Row>());
  }

  /** The prepared statement, after checking the scope and the parameter cap. */
  prepare(query: Sql): D1PreparedStatement {
    if (!query.scoped) throw new Error("statement without the project scope refused");
    const { text, params } = compile(query, this.project);
    return this.d1.prepare(text).bind(...params);
  }

  async all<T extends Row>(query: Sql): Promise<T[]> {
    return (await this.one(query)).results as T[];
  }

  async first<T extends Row>(query: Sql): Promise<T | null> {
    return ((await this.one(query)).results[0] as T | undefined) ?? null;
  }

  async run(query: Sql): Promise<D1Result> {
    return await this.one(query);
  }

  /**
   * Run statements as one transaction, in one round trip: all or nothing.
   * A {@link CHANGED} entry guards the statement before it; the results
   * array has one entry per statement, guards included.
   */
  async batch(queries: readonly (Sql | typeof CHANGED)[]): Promise<D1Result<Row>[]> {
    if (queries.length === 0) return [];
    const statements = queries.map((q) => (q === CHANGED ? this.d1.prepare(GUARD_SQL) : this.prepare(q)));
    // The pending key goes with the first batch that writes, all or nothing.
    const lead = this.lead !== null && queries.some((q) => q === CHANGED || writes(q)) ? this.lead : null;
    if (lead !== null) this.lead = null;
    try {
      if (lead === null) return await this.timer.time(this.d1.batch<Row>(statements));
      return (await this.timer.time(this.d1.batch<Row>([lead, ...statements]))).slice(1);
    } catch (err) {
      if (lead !== null && err instanceof Error && KEY_TAKEN.test(err.message)) throw new KeyTaken();
      if (lead !== null) this.lead = lead; // rolled back with the batch: it runs with the next write
      if (isGuardFailure(err)) throw new GuardFailed();
      throw err;
    }
  }
}

/**
 * The gateway's own tables (tokens, audit, idempotency keys) span projects;
 * only gateway code uses this door, never a module.
 */
export class GatewayDb {
  constructor(
    readonly d1: D1Database,
    private readonly timer: DbTimer = new DbTimer(),
  ) {}

  prepare(query: Sql): D1PreparedStatement {
    const { text, params } = compile(query, null);
    return this.d1.prepare(text).bind(...params);
  }

  async all<T extends Row>(query: Sql): Promise<T[]> {
    return (await this.timer.time(this.prepare(query).all<T>())).results;
  }

  async first<T extends Row>(query: Sql): Promise<T | null> {
    return await this.timer.time(this.prepare(query).first<T>());
  }

  async run(query: Sql): Promise<D1Result> {
    return await this.timer.time(this.prepare(query).run());
  }
}
