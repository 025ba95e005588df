"""The three store protocols, and the embedder protocol.

Every method is async and every store is an async context manager::

    async with BeadsAdapter(".beads/beads.db") as tasks:
        task = await tasks.claim_next("agent-1", skills=["python"])

Semantics every backend keeps (the conformance kit in ``jetpack.shared.testing``
checks each one, for local and edge backends alike):

- A task is ready when its status is pending or ready, every dependency is
  completed, it has no blockers and its back-off (``not_before``) has passed.
  The stored status agrees: a waiting task is stored ``ready`` when only its
  back-off (if any) keeps it, else ``pending``; it is promoted when its last
  dependency completes. Cycles and unknown dependency ids are refused at write
  time.
- A dependant of a failed or blocked task is ``blocked``, with a blocker naming
  that task (``"dependency <id> failed"`` / ``"... blocked"``), whenever the
  edge appears: a failure, ``create_task``, an ``update_task`` of status or
  dependencies, ``import_tasks`` (a task held by an agent is left to its holder
  and placed when it returns to the queue). When the task is reopened (status
  back to pending), what it blocked goes back to the queue. Status changes through
  ``update_task``/``import_tasks`` keep the claim invariants: ``claimed`` and
  ``in_progress`` come only from claims (with holder and expiry), leaving them
  ends the claim, ``failed`` blocks dependants as ``fail_task`` does.
- A claim succeeds for exactly one caller, across coroutines, threads,
  processes and machines. A claim past ``claim_expires_at`` is lost: the task
  goes back to the queue counted as a retry (failure ``stalled``), and its
  former holder's ``renew_claim``, ``start_task``, ``complete_task`` and
  ``fail_task`` raise ConflictError (``release_task`` returns False) exactly as
  if a sweep had already run, whether or not one did; that sweep is durable.
  Agents keep claims alive with ``renew_claim``. Release is for the holder only
  and never reopens a completed or failed task.
- Two exclusive leases on overlapping paths never coexist; a lease expires at
  its TTL; only its holder (or expiry) releases it. Overlap is decided for the
  longest paths (1,024 characters) and any wildcards without recursion.
- Published messages reach every live subscriber of their type (and ``"*"``);
  direct messages reach their agent even if it was offline (kept until acked
  or retention ends); a handler that raises neither loses the message nor
  wedges the bus.
- Ids are collision-free without coordination; creating an existing id is a
  ConflictError, never an overwrite.
- Bad input raises ``jetpack.shared.errors.ValidationError`` naming the field,
  and nothing is written: this includes JSON nested deeper than
  ``MAX_JSON_DEPTH`` (32) levels, text with lone surrogates (anywhere: keys,
  values, paths, contents), and TTLs over one year (``rules.MAX_TTL_MS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

from jetpack.shared._mail import (
    AgentPresence,
    AgentStatus,
    Lease,
    LeaseStatus,
    Message,
    MessageType,
)
from jetpack.shared._memory import MemoryEntry, MemoryInput, MemoryStats, MemoryType, Page
from jetpack.shared._tasks import (
    FailureType,
    Task,
    TaskInput,
    TaskListOptions,
    TaskStats,
    TaskStatus,
    TaskUpdate,
)

__all__ = [
    "AsyncStore",
    "Embedder",
    "MailBus",
    "MemoryStore",
    "MessageHandler",
    "TaskStore",
]

MessageHandler = Callable[[Message], Awaitable[None] | None]
"""A subscriber: a plain or async function of one message."""


@runtime_checkable
class AsyncStore(Protocol):
    """Lifecycle shared by every store: ``async with`` opens and closes it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class TaskStore(AsyncStore, Protocol):
    """Tasks with dependencies, priorities, atomic claims and retry back-off.

    Lookups return None for an unknown id; mutations raise NotFoundError.
    """

    async def create_task(self, task: TaskInput | Mapping[str, Any]) -> Task:
        """Create one task.

        Stored ``ready`` when nothing keeps it waiting, ``pending`` while a
        dependency is unfinished or it has blockers, ``blocked`` (naming the
        task) when a dependency is failed or blocked. Existing id →
        ConflictError; unknown dependency → ValidationError; a cycle → ConflictError.
        """
        ...

    async def create_tasks(self, tasks: Sequence[TaskInput | Mapping[str, Any]]) -> list[Task]:
        """Create many tasks in one transaction: all or none.

        Later items may depend on earlier ones.
        """
        ...

    async def import_tasks(
        self, tasks: Sequence[Task | Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        """Write whole tasks as given (ids, statuses, timestamps): all or none.

        For imports, migrations and sync, not for agents. Dependencies may point
        anywhere in the batch or at stored tasks; an unknown id is a
        ValidationError, a cycle a ConflictError. An existing id is a
        ConflictError unless ``replace``, which overwrites it. A ``claimed`` or
        ``in_progress`` task needs ``assigned_agent`` and ``claim_expires_at``
        (else ValidationError naming ``status``). Waiting tasks (imported or
        stored dependants of imported ones) are then placed by the dependency
        rules: pending/ready by readiness, blocked below a failed or blocked
        task. Returns the count.
        """
        ...

    async def get_task(self, task_id: str) -> Task | None:
        """Return the task, or None."""
        ...

    async def update_task(self, task_id: str, update: TaskUpdate | Mapping[str, Any]) -> Task:
        """Apply the fields set in ``update``; bumps ``version`` and ``updated_at``.

        A status change keeps the claim invariants: ``claimed``/``in_progress``
        are refused (ValidationError naming ``status``: claim instead); leaving a
        held status ends the claim; ``completed`` sets ``completed_at`` and
        promotes dependants; ``failed`` or ``blocked`` blocks every dependant;
        reopening a failed, blocked or completed task puts its dependants back
        where readiness says. A waiting task (pending/ready) is placed by the
        dependency rules after the change, so asking for ``pending`` may store
        ``ready`` or ``blocked``.
        """
        ...

    async def delete_task(self, task_id: str) -> bool:
        """Delete a task nobody depends on (else ConflictError). False if it did not exist."""
        ...

    async def list_tasks(
        self, options: TaskListOptions | Mapping[str, Any] | None = None
    ) -> list[Task]:
        """Tasks matching the filters, in creation (insertion) order, with limit/offset."""
        ...

    async def get_ready_tasks(self, limit: int | None = None) -> list[Task]:
        """Ready tasks in claim order: priority (critical first), then age.

        The same tasks as ``list_tasks({"status": "ready"})`` except those whose
        retry back-off (``not_before``) has not passed yet.
        """
        ...

    async def get_tasks_by_status(self, status: TaskStatus) -> list[Task]:
        """Tasks in one status, in creation order."""
        ...

    async def get_tasks_by_agent(self, agent_id: str) -> list[Task]:
        """Tasks the agent holds now (claimed or in progress)."""
        ...

    async def claim_task(
        self, task_id: str, agent_id: str, *, ttl_ms: int | None = None
    ) -> Task | None:
        """Claim one ready task for ``agent_id``; None if it is not ready or someone else won.

        The claim lapses after ``ttl_ms`` (the store's default when None; at
        most one year, else ValidationError) unless renewed. Unknown id → NotFoundError.
        """
        ...

    async def claim_next(
        self,
        agent_id: str,
        skills: Sequence[str] | None = None,
        *,
        ttl_ms: int | None = None,
    ) -> Task | None:
        """Atomically claim the best ready task the agent has the skills for.

        ``skills=None`` means any task. A lapsed claim counts as ready again.
        Returns None when nothing fits.
        """
        ...

    async def renew_claim(self, task_id: str, agent_id: str, *, ttl_ms: int | None = None) -> Task:
        """Extend the holder's claim to now + ``ttl_ms``.

        ConflictError if ``agent_id`` does not hold it, or held it but the claim
        lapsed (the task is then back in the queue, one retry used).
        """
        ...

    async def start_task(self, task_id: str, agent_id: str) -> Task:
        """Mark a held task ``in_progress``; ConflictError if ``agent_id`` does not hold it.

        A claim past its expiry is not held any more (see :meth:`renew_claim`).
        """
        ...

    async def release_task(self, task_id: str, agent_id: str) -> bool:
        """Give a held task back (interrupted; no retry used).

        False if ``agent_id`` does not hold it (a lapsed claim is not held: it went
        back to the queue with a retry used); a completed or failed task is never
        reopened.
        """
        ...

    async def complete_task(
        self,
        task_id: str,
        agent_id: str,
        *,
        actual_minutes: int | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> Task:
        """Finish a held task.

        Sets completed_at and actual_minutes (measured from the claim when not
        given); ``result`` goes to metadata["result"]; dependants whose last
        dependency this was become ``ready``. ConflictError if not the holder,
        including a holder whose claim lapsed (see :meth:`renew_claim`).
        """
        ...

    async def fail_task(
        self,
        task_id: str,
        agent_id: str,
        error: str,
        failure_type: FailureType = FailureType.ERROR,
    ) -> Task:
        """Record a failed attempt.

        Retries after back-off while retries remain (stored ``ready`` with
        ``not_before``), else ``failed`` and every dependant ``blocked``.
        ConflictError if not the holder, including a holder whose claim lapsed.
        """
        ...

    async def recover_expired_claims(self) -> list[Task]:
        """Return every lapsed claim to the queue (retry + 1, ``stalled``), now.

        Every other call behaves as if this had just run: a lapsed claim is never
        renewed, started, completed or failed by its former holder.
        """
        ...

    async def sync(self) -> None:
        """Push/pull with a remote replica where there is one; a no-op otherwise."""
        ...

    async def get_stats(self) -> TaskStats:
        """Counts by status and priority, the ready count, mean completion time."""
        ...


@runtime_checkable
class MailBus(AsyncStore, Protocol):
    """Messages between agents, file leases and presence, for one agent id."""

    @property
    def agent_id(self) -> str:
        """The agent this bus speaks for: sender of what it publishes, holder of its leases."""
        ...

    async def initialize(self) -> None:
        """Open the bus and start delivering to subscribers (``__aenter__`` calls it)."""
        ...

    async def shutdown(self) -> None:
        """Stop delivery, release the leases acquired through this bus, close.

        Only the leases granted through this bus instance (and not re-granted
        since through another bus of the same agent) are released; leases the
        same agent holds through other buses (its orchestrator loop, another MCP
        server) stay until their holder releases them or their TTL passes.
        ``__aexit__`` calls it.
        """
        ...

    async def publish(
        self,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Broadcast to every live subscriber of ``type`` (and of ``"*"``).

        ``type`` may also be a whole :class:`Message`, as in the seed's
        ``publish(message)``: its type, payload, correlation_id and ack_required
        are sent. Its ``from_agent`` must be this bus's agent and its
        ``to_agent`` None (else ValidationError naming the field), and the other
        arguments stay unset. The bus assigns the id, timestamp and seq.
        ``ack_required`` defaults to False.
        """
        ...

    def subscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Call ``handler`` for each message of ``type`` (``"*"``: all) from now on."""
        ...

    def unsubscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Stop calling ``handler`` for ``type``."""
        ...

    async def send_to(
        self,
        agent_id: str,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Send a direct message, kept until ``agent_id`` acknowledges it (even if offline).

        ``type`` may be a whole :class:`Message` as for :meth:`publish` (its
        ``to_agent`` None or ``agent_id``). ``ack_required`` defaults to True.
        """
        ...

    async def acknowledge(self, message_id: str) -> bool:
        """Mark a direct message to this agent as handled. False if unknown or not ours."""
        ...

    async def fetch_inbox(self, *, limit: int = 100, include_acked: bool = False) -> list[Message]:
        """Direct messages to this agent, oldest first (unacknowledged only by default)."""
        ...

    async def acquire_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> bool:
        """Lease a path or glob for ``ttl_ms`` (at most one year).

        False if an overlapping lease of another agent conflicts (an exclusive
        lease conflicts with anything). Re-acquiring one's own lease renews it
        (and makes it this bus's, for :meth:`shutdown`).
        """
        ...

    async def grant_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> Lease:
        """Like :meth:`acquire_lease`, but return the grant with its fencing token.

        Raises LeaseHeldError naming the holder, its expiry and the pattern that
        conflicts.
        """
        ...

    async def renew_lease(self, path: str, ttl_ms: int) -> bool:
        """Extend this agent's live lease on exactly ``path``; False if it holds none."""
        ...

    async def release_lease(self, path: str) -> bool:
        """Release this agent's lease on exactly ``path``; False if it holds none."""
        ...

    async def is_leased(self, path: str) -> LeaseStatus:
        """Whether any live lease (of anyone) overlaps ``path``."""
        ...

    async def list_leases(self) -> list[Lease]:
        """All live leases, of every agent."""
        ...

    async def send_heartbeat(
        self, status: AgentStatus = AgentStatus.IDLE, info: Mapping[str, Any] | None = None
    ) -> None:
        """Record that this agent is alive (and broadcast a ``heartbeat`` message)."""
        ...

    async def list_agents(self, *, include_offline: bool = False) -> list[AgentPresence]:
        """Agents seen recently; silent longer than the presence window → offline."""
        ...


@runtime_checkable
class MemoryStore(AsyncStore, Protocol):
    """Memories with text (BM25) and vector search, importance and compaction.

    A store keeps one vector size: its embedder's, or else the first vector
    stored. Other sizes, zero vectors, non-finite values and vectors that do
    not fit float32 (a length over about 1.8e19, whose square float32 cannot
    hold, or every value rounding to 0) are ValidationErrors naming ``embedding``.
    """

    async def store(self, entry: MemoryInput | Mapping[str, Any]) -> str:
        """Store one memory (embedding it when an embedder is configured); return its id."""
        ...

    async def store_many(self, entries: Sequence[MemoryInput | Mapping[str, Any]]) -> list[str]:
        """Store many in one transaction: all or none."""
        ...

    async def retrieve(self, memory_id: str) -> MemoryEntry | None:
        """Return the entry after atomically bumping access_count and last_accessed."""
        ...

    async def delete(self, memory_id: str) -> bool:
        """Delete; False if it did not exist."""
        ...

    async def search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Full-text (BM25) search. Any text is safe; exact identifiers are found.

        Text with lone surrogates is a ValidationError naming ``query``.
        """
        ...

    async def semantic_search(
        self, embedding: Sequence[float], limit: int = 10
    ) -> list[MemoryEntry]:
        """Exact cosine top-k over stored vectors, best first."""
        ...

    async def semantic_search_by_query(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Embed ``query`` and search by vector; without an embedder, full-text search."""
        ...

    async def hybrid_search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """BM25 and vector results fused by ``rules.fuse_hybrid`` (full text if no vectors)."""
        ...

    async def compact(self, threshold: float) -> int:
        """Delete entries with importance below ``threshold`` except protected types."""
        ...

    async def adaptive_compact(self) -> int:
        """Trim to ``max_entries`` by lowest retention score; never the newest entry."""
        ...

    async def update_importance(self, memory_id: str, importance: float) -> None:
        """Set importance (0..1). NotFoundError for an unknown id."""
        ...

    async def get_by_type(self, type: MemoryType, limit: int = 50) -> list[MemoryEntry]:
        """Entries of one type, most important first."""
        ...

    async def get_recent_memories(self, limit: int = 50) -> list[MemoryEntry]:
        """Newest first."""
        ...

    async def list_memories(
        self, *, limit: int = 50, cursor: str | None = None, type: MemoryType | None = None
    ) -> Page[MemoryEntry]:
        """Keyset pages, newest first, stable under writes. A bad cursor is a ValidationError."""
        ...

    async def get_stats(self) -> MemoryStats:
        """Counts, mean importance, accesses, embedding coverage."""
        ...

    async def backfill_embeddings(self, batch_size: int = 32) -> int:
        """Embed up to ``batch_size`` entries lacking vectors; return how many. Resumable."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors. Implementations never block the event loop."""

    @property
    def name(self) -> str:
        """Model name, recorded with every vector it makes."""
        ...

    @property
    def dimensions(self) -> int:
        """Vector size."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...

    async def aclose(self) -> None:
        """Release resources (HTTP clients, model memory)."""
        ...
