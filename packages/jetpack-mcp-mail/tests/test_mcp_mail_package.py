"""The public face: exports, entry point, from_config, lease details beyond the kit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import jetpack.mcp_mail
from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import MailBus
from jetpack.shared.config import load_config
from jetpack.shared.errors import LeaseHeldError
from jetpack.shared.registry import create_store, load_backend


def test_all_is_sorted_and_importable() -> None:
    names = jetpack.mcp_mail.__all__
    # isort order, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert names == sorted(
        names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    for name in names:
        assert hasattr(jetpack.mcp_mail, name)


def test_entry_point_and_from_config(tmp_path: Path) -> None:
    assert load_backend("mail.local") is MCPMailAdapter
    config = load_config(tmp_path, env={"JETPACK_MAIL_DIR": "state/mail"})
    bus = create_store(config, "mail", agent_id="agent-7")
    assert isinstance(bus, MCPMailAdapter) and isinstance(bus, MailBus)
    assert bus.agent_id == "agent-7"
    assert bus.db_path == tmp_path / "state" / "mail" / "mail.db"


async def test_grant_lease_returns_token_and_names_holder(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path) as a, MCPMailAdapter("b", tmp_path) as b:
        first = await a.grant_lease("./src//auth/../auth/x.py", 5_000)
        assert first.path == "src/auth/x.py" and first.fencing_token == 1
        with pytest.raises(LeaseHeldError) as info:
            await b.grant_lease("src/*/x.py", 5_000)
        assert info.value.holder == "a" and info.value.pattern == "src/auth/x.py"
        again = await a.grant_lease("src/auth/x.py", 5_000)
        assert again.fencing_token == 2, "re-acquiring is a new grant"
        assert [le.fencing_token for le in await b.list_leases()] == [2]
        assert await a.renew_lease("src/auth/x.py", 5_000)
        assert (await b.is_leased("src/auth/x.py")).fencing_token == 2, "renewal keeps the token"


async def test_own_overlapping_leases_and_reacquire_after_expiry(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path) as a, MCPMailAdapter("b", tmp_path) as b:
        assert await a.acquire_lease("src/**", 200)
        assert await a.acquire_lease("src/a.py", 200), "own leases never conflict"
        assert not await b.acquire_lease("src/z/y.py", 200, exclusive=False)
        await asyncio.sleep(0.25)
        assert not await a.renew_lease("src/**", 1_000), "an expired lease cannot be renewed"
        assert not await a.release_lease("src/a.py")
        assert await b.acquire_lease("src/z/y.py", 1_000)
        assert await a.list_leases() == await b.list_leases()


async def test_presence_info_and_shutdown(tmp_path: Path) -> None:
    async with MCPMailAdapter("a", tmp_path) as a:
        async with MCPMailAdapter("b", tmp_path) as b:
            await b.send_heartbeat("busy", {"task": "bd-9"})
        (presence,) = await a.list_agents()
        assert presence.agent_id == "b" and presence.info == {"task": "bd-9"}
        await a.send_heartbeat("offline")
        assert [p.agent_id for p in await a.list_agents()] == ["b"]
