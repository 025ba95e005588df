"""The ``memory`` tool: hybrid search (BM25 + vectors, fused by score) and storing a learning."""

from __future__ import annotations

from typing import Any

from jetpack.cli.mcp._context import ToolContext, slim
from jetpack.cli.mcp._schema import ToolSpec, obj
from jetpack.shared import MemoryEntry, MemoryType
from jetpack.shared.errors import ValidationError

__all__ = ["MEMORY_TOOLS", "SNIPPET_CHARS"]

SNIPPET_CHARS = 1500
"""Search results carry at most this much of each memory's text."""


def _entry(entry: MemoryEntry) -> dict[str, Any]:
    text = entry.content
    if len(text) > SNIPPET_CHARS:
        text = text[:SNIPPET_CHARS] + "…"
    return slim(
        {
            "id": entry.id,
            "type": entry.type.value,
            "content": text,
            "importance": entry.importance,
            "score": None if entry.score is None else round(entry.score, 4),
        }
    )


async def _memory(ctx: ToolContext, args: dict[str, Any]) -> Any:
    action = args["action"]
    store = ctx.adapters.memory
    if action == "search":
        if not args.get("query"):
            raise ValidationError("query", "is required for search")
        found = await store.hybrid_search(args["query"], int(args.get("limit", 5)))
        return [_entry(e) for e in found]
    if not args.get("content"):
        raise ValidationError("content", "is required for store")
    metadata: dict[str, Any] = {"agent_id": ctx.agent_id}
    if args.get("task"):
        metadata["task_id"] = args["task"]
    memory_id = await store.store(
        {
            "type": args.get("type", MemoryType.AGENT_LEARNING.value),
            "content": args["content"],
            "importance": float(args.get("importance", 0.5)),
            "metadata": metadata,
        }
    )
    return {"id": memory_id}


MEMORY = ToolSpec(
    name="memory",
    description="Shared memory: search (hybrid text+semantic) before you start; store what "
    "you learned (type defaults to agent_learning).",
    schema=obj(
        ["action"],
        action={"type": "string", "enum": ["search", "store"]},
        query={"type": "string", "maxLength": 2000},
        content={"type": "string", "maxLength": 50_000},
        type={"type": "string", "enum": [t.value for t in MemoryType]},
        importance={"type": "number", "minimum": 0, "maximum": 1},
        task={"type": "string", "maxLength": 200},
        limit={"type": "integer", "minimum": 1, "maximum": 50},
    ),
    handler=_memory,
)

MEMORY_TOOLS = [MEMORY]
"""The memory tools, in listing order."""
