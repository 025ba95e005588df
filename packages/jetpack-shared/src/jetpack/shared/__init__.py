"""The Jetpack contract: models, store protocols, errors, config and backend registry.

Backends implement :class:`TaskStore`, :class:`MailBus` and :class:`MemoryStore`;
the conformance kit that checks them lives in ``jetpack.shared.testing``
(install ``jetpack-shared[testing]``).
"""

from jetpack.shared.__about__ import __version__
from jetpack.shared._base import (
    ID_PATTERN,
    MAX_JSON_DEPTH,
    MAX_LIST_ITEMS,
    MAX_METADATA_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    JetpackModel,
    parse,
)
from jetpack.shared._lifecycle import AsyncStoreMixin
from jetpack.shared._mail import (
    AgentPresence,
    AgentStatus,
    Lease,
    LeaseStatus,
    Message,
    MessageType,
)
from jetpack.shared._memory import (
    CALLER_MODEL,
    MAX_EMBEDDING_DIMENSIONS,
    MemoryEntry,
    MemoryInput,
    MemoryStats,
    MemoryType,
    Page,
)
from jetpack.shared._protocols import (
    AsyncStore,
    Embedder,
    MailBus,
    MemoryStore,
    MessageHandler,
    TaskStore,
)
from jetpack.shared._repeat import repeat_scope, repeatable
from jetpack.shared._tasks import (
    FINAL_STATUSES,
    HELD_STATUSES,
    OPEN_STATUSES,
    FailureType,
    Task,
    TaskInput,
    TaskListOptions,
    TaskPriority,
    TaskStats,
    TaskStatus,
    TaskUpdate,
)
from jetpack.shared._time import from_ms, to_ms, utcnow

__all__ = [
    "CALLER_MODEL",
    "FINAL_STATUSES",
    "HELD_STATUSES",
    "ID_PATTERN",
    "MAX_EMBEDDING_DIMENSIONS",
    "MAX_JSON_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_METADATA_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "OPEN_STATUSES",
    "AgentPresence",
    "AgentStatus",
    "AsyncStore",
    "AsyncStoreMixin",
    "Embedder",
    "FailureType",
    "JetpackModel",
    "Lease",
    "LeaseStatus",
    "MailBus",
    "MemoryEntry",
    "MemoryInput",
    "MemoryStats",
    "MemoryStore",
    "MemoryType",
    "Message",
    "MessageHandler",
    "MessageType",
    "Page",
    "Task",
    "TaskInput",
    "TaskListOptions",
    "TaskPriority",
    "TaskStats",
    "TaskStatus",
    "TaskStore",
    "TaskUpdate",
    "__version__",
    "from_ms",
    "parse",
    "repeat_scope",
    "repeatable",
    "to_ms",
    "utcnow",
]
