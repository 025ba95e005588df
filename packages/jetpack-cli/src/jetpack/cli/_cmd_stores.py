"""``jetpack mail ...`` and ``jetpack memory ...``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from jetpack.cli._app import app
from jetpack.cli._common import (
    console,
    id_column,
    open_mail,
    open_memory,
    project_config,
    resolve_agent_id,
    run_async,
)
from jetpack.shared import MemoryType, MessageType, utcnow
from jetpack.shared.errors import ValidationError

JSON_HELP = "Machine-readable output."

__all__ = ["mail_app", "memory_app"]

mail_app = typer.Typer(help="Messages between agents, and file leases.", no_args_is_help=True)
memory_app = typer.Typer(help="What agents learned.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")
app.add_typer(memory_app, name="memory")


@mail_app.command("send")
@run_async
async def send(
    to: Annotated[str, typer.Argument(help="Agent id ('*' to broadcast).")],
    text: Annotated[str, typer.Argument(help="Message text.")],
    kind: Annotated[MessageType, typer.Option("--type")] = MessageType.COORDINATION_REQUEST,
    sender: Annotated[str, typer.Option("--from", help="Sender id.")] = "cli",
) -> None:
    """Send a direct message (kept until acknowledged) or broadcast one."""
    async with open_mail(project_config(), agent_id=sender) as store:
        to = await resolve_agent_id(store, to)
        if to == "*":
            msg = await store.publish(kind, {"text": text})
        else:
            msg = await store.send_to(to, kind, {"text": text})
    console.print(msg.id)


@mail_app.command("inbox")
@run_async
async def inbox(
    agent: Annotated[str, typer.Argument(help="Whose inbox.")] = "cli",
    include_acked: Annotated[bool, typer.Option("--all", help="Include acknowledged.")] = False,
    ack: Annotated[bool, typer.Option(help="Acknowledge what is shown.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Direct messages to an agent (id or unique prefix), oldest first."""
    config = project_config()
    async with open_mail(config, agent_id="cli") as lookup:
        agent = await resolve_agent_id(lookup, agent)
    async with open_mail(config, agent_id=agent) as store:
        messages = await store.fetch_inbox(include_acked=include_acked)
        if ack:
            for m in messages:
                await store.acknowledge(m.id)
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in messages]))
        return
    table = Table(title=f"inbox of {agent}")
    id_column(table, "id", (m.id for m in messages))
    table.add_column("time", no_wrap=True)
    id_column(table, "from", (m.from_agent for m in messages))
    table.add_column("type", no_wrap=True)
    table.add_column("payload", ratio=1)
    for m in messages:
        table.add_row(
            m.id, f"{m.timestamp:%H:%M:%S}", m.from_agent, str(m.type), json.dumps(m.payload)[:120]
        )
    console.print(table)


@mail_app.command("leases")
@run_async
async def leases(
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Live file leases of every agent."""
    async with open_mail(project_config()) as store:
        found = await store.list_leases()
    if as_json:
        typer.echo(json.dumps([lease.model_dump(mode="json") for lease in found]))
        return
    now = utcnow()
    table = Table("path")
    id_column(table, "agent", (lease.agent_id for lease in found))
    table.add_column("mode")
    table.add_column("expires in")
    for lease in found:
        left = (lease.expires_at - now).total_seconds()
        table.add_row(
            lease.path, lease.agent_id, "exclusive" if lease.exclusive else "shared", f"{left:.0f}s"
        )
    console.print(table)


@memory_app.command("add")
@run_async
async def add(
    content: Annotated[str, typer.Argument(help="What to remember.")],
    kind: Annotated[MemoryType, typer.Option("--type")] = MemoryType.CODEBASE_KNOWLEDGE,
    importance: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
) -> None:
    """Store a memory."""
    async with open_memory(project_config()) as store:
        memory_id = await store.store({"type": kind, "content": content, "importance": importance})
    console.print(memory_id)


@memory_app.command("search")
@run_async
async def search(
    query: str,
    limit: Annotated[int, typer.Option(min=1)] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, text or semantic.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Search memories (BM25 + vectors, fused by score, by default)."""
    if mode not in ("hybrid", "text", "semantic"):
        raise ValidationError("--mode", f"{mode!r} is not one of hybrid, text, semantic")
    async with open_memory(project_config()) as store:
        if mode == "text":
            found = await store.search(query, limit)
        elif mode == "semantic":
            found = await store.semantic_search_by_query(query, limit)
        else:
            found = await store.hybrid_search(query, limit)
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in found]))
        return
    table = Table()
    id_column(table, "id", (m.id for m in found))
    table.add_column("type", no_wrap=True)
    table.add_column("imp.", no_wrap=True)
    table.add_column("score", no_wrap=True)
    table.add_column("content", ratio=1)
    for m in found:
        table.add_row(
            m.id,
            str(m.type),
            f"{m.importance:.2f}",
            f"{m.score:.3f}" if m.score is not None else "",
            m.content[:100],
        )
    console.print(table)


@memory_app.command("stats")
@run_async
async def stats() -> None:
    """Counts by type, importance, embedding coverage."""
    async with open_memory(project_config()) as store:
        found = await store.get_stats()
    typer.echo(found.model_dump_json(indent=2))


@memory_app.command("compact")
@run_async
async def compact(
    threshold: Annotated[float | None, typer.Option(help="Drop below this importance.")] = None,
) -> None:
    """Trim the store: below an importance threshold, or adaptively to its size limit."""
    async with open_memory(project_config()) as store:
        removed = (
            await store.compact(threshold)
            if threshold is not None
            else await store.adaptive_compact()
        )
    console.print(f"removed {removed} memories")
