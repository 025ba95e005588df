"""The CLI's own config tables: ``[orchestrator]``, ``[agents]`` and ``[claude]``.

They live in ``.jetpack/config.toml`` next to the store settings that
``jetpack.shared.config`` reads; a bad value is a ValidationError naming
the key, e.g. ``orchestrator.task_timeout_s``.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from jetpack.cli._claude import ClaudeOptions
from jetpack.shared.config import Backend, JetpackConfig
from jetpack.shared.errors import ValidationError

__all__ = ["AgentSettings", "ClaudeSettings", "OrchestratorSettings", "Settings", "load_settings"]


LOCAL_POLL_S = 2.0
"""``orchestrator.poll_s`` when the config leaves it unset and the task store is local."""


class _Table(BaseModel):
    # Unknown keys are ignored here and warned about (with the nearest known key) by
    # `_keys.unknown_keys`: a config file may be shared with a newer jetpack.
    model_config = ConfigDict(extra="ignore")


class OrchestratorSettings(_Table):
    """How agent loops run (``[orchestrator]``)."""

    task_timeout_s: float = Field(default=1800.0, gt=0, description="Wall-clock limit per attempt.")
    idle_timeout_s: float | None = Field(
        default=600.0, gt=0, description="Kill an attempt silent this long (stalled)."
    )
    kill_grace_s: float = Field(default=5.0, ge=0, description="SIGTERM → SIGKILL delay.")
    shutdown_grace_s: float = Field(
        default=30.0, ge=0, description="After Ctrl+C, time running attempts get to finish."
    )
    claim_ttl_ms: int = Field(
        default=120_000,
        gt=0,
        description="Claim lifetime; renewed every third of it while running.",
    )
    heartbeat_s: float = Field(
        default=10.0, gt=0, description="Presence heartbeat period of a busy agent."
    )
    idle_heartbeat_s: float = Field(
        default=30.0, gt=0, description="Presence heartbeat period of an idle agent."
    )
    poll_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Fallback claim of a run's idle agents when no wake-up came by mail "
            "(unset in the config: 2 s when the task store is local, 60 s on the edge)."
        ),
    )
    lease_ttl_ms: int = Field(default=120_000, gt=0, description="File lease lifetime (renewed).")
    lease_wait_s: float = Field(
        default=30.0, ge=0, description="Wait this long for another agent's lease, then hand back."
    )
    verify_command: str | None = Field(
        default=None, description="Shell command run after each success; non-zero fails the task."
    )
    verify_timeout_s: float = Field(default=600.0, gt=0, description="Limit of the verify command.")
    memory_context: int = Field(default=5, ge=0, le=50, description="Memories put in a prompt.")
    worktrees: bool = Field(default=False, description="One git worktree per task.")
    merge: Literal["merge", "review"] = Field(
        default="merge", description="After success: merge the task branch, or leave it."
    )
    command: str | None = Field(default=None, description="Default command (command executor).")


class AgentSettings(_Table):
    """The swarm (``[agents]``)."""

    count: int = Field(default=3, ge=1, le=64, description="Agents started by `jetpack start`.")
    executor: Literal["claude", "command", "demo"] = Field(default="claude")
    skills: list[str] | None = Field(
        default=None, description="Skills of every agent (None: any task)."
    )


class ClaudeSettings(_Table):
    """Flags passed to ``claude`` (``[claude]``)."""

    command: str = "claude"
    model: str | None = None
    permission_mode: (
        Literal["acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan"] | None
    ) = "acceptEdits"
    allowed_tools: list[str] = Field(default_factory=list)
    disallowed_tools: list[str] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, gt=0)
    max_budget_usd: float | None = Field(default=None, gt=0)
    mcp_config: str | None = None
    append_system_prompt: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    jetpack_mcp: bool = Field(
        default=True, description="Give each agent the `jetpack mcp` tools (own agent id)."
    )

    def options(self) -> ClaudeOptions:
        """As executor options."""
        return ClaudeOptions(
            command=self.command,
            model=self.model,
            permission_mode=self.permission_mode,
            allowed_tools=tuple(self.allowed_tools),
            disallowed_tools=tuple(self.disallowed_tools),
            max_turns=self.max_turns,
            max_budget_usd=self.max_budget_usd,
            mcp_config=self.mcp_config,
            append_system_prompt=self.append_system_prompt,
            extra_args=tuple(self.extra_args),
            jetpack_mcp=self.jetpack_mcp,
        )


class Settings(_Table):
    """All three tables."""

    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    claude: ClaudeSettings = Field(default_factory=ClaudeSettings)


def load_settings(config: JetpackConfig) -> Settings:
    """Read the CLI tables of ``config``; a bad value names its key."""
    data: dict[str, Any] = {
        name: config.section(name) for name in ("orchestrator", "agents", "claude")
    }
    if "poll_s" not in data["orchestrator"] and config.backend_for("tasks") is Backend.LOCAL:
        # A local claim costs nothing: notice work nobody announced (tasks made through
        # the Python API, a lapsed claim) within seconds. On the edge every request costs.
        data["orchestrator"]["poll_s"] = LOCAL_POLL_S
    try:
        return Settings.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise ValidationError(loc or "config", str(first.get("msg", "invalid"))) from exc
