from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from jetpack.shared import registry
from jetpack.shared.config import load_config
from jetpack.shared.errors import BackendNotInstalledError, ConflictError


def fake_entry_points(*eps: EntryPoint) -> object:
    def entry_points(group: str) -> tuple[EntryPoint, ...]:
        assert group == registry.ENTRY_POINT_GROUP
        return eps

    return entry_points


def test_missing_backend_names_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "entry_points", fake_entry_points())
    with pytest.raises(BackendNotInstalledError) as info:
        registry.load_backend("memory.cloudflare")
    assert info.value.distribution == "jetpack-cf-cass"
    assert "pip install jetpack-cf-cass" in str(info.value)


def test_duplicate_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    a = EntryPoint("tasks.local", "pkg_a:Store", registry.ENTRY_POINT_GROUP)
    b = EntryPoint("tasks.local", "pkg_b:Store", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", fake_entry_points(a, b))
    with pytest.raises(ConflictError):
        registry.discover_backends()


def test_create_adapters_builds_from_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    eps = [
        EntryPoint(
            "tasks.local",
            "jetpack.shared.testing._registry_fixtures:Tasks",
            registry.ENTRY_POINT_GROUP,
        ),
        EntryPoint(
            "mail.local",
            "jetpack.shared.testing._registry_fixtures:Mail",
            registry.ENTRY_POINT_GROUP,
        ),
        EntryPoint(
            "memory.local",
            "jetpack.shared.testing._registry_fixtures:Memory",
            registry.ENTRY_POINT_GROUP,
        ),
    ]
    monkeypatch.setattr(registry, "entry_points", fake_entry_points(*eps))
    adapters = registry.create_adapters(load_config(tmp_path, env={}), agent_id="agent-7")
    assert type(adapters.tasks).__name__ == "InMemoryTaskStore"
    assert adapters.mail.agent_id == "agent-7"
    assert [b.name for b in registry.discover_backends()] == [
        "mail.local",
        "memory.local",
        "tasks.local",
    ]


def test_broken_backend_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint("tasks.local", "no_such_module_xyz:Store", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", fake_entry_points(ep))
    with pytest.raises(registry.JetpackError, match="failed to load"):
        registry.load_backend("tasks.local")


def test_config_options_keep_known_keys_and_warn_about_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".jetpack").mkdir()
    (tmp_path / ".jetpack" / "config.toml").write_text(
        "[beads]\nclaim_ttl_ms = 5000\nretry_bsae_ms = 10\n"
    )
    config = load_config(tmp_path, env={})
    with caplog.at_level("WARNING", logger="jetpack.shared.registry"):
        options = registry.config_options(config, "beads", {"claim_ttl_ms", "retry_base_ms"})
    assert options == {"claim_ttl_ms": 5000}
    assert "'retry_bsae_ms' in [beads]" in caplog.text
    assert "did you mean 'retry_base_ms'" in caplog.text
    assert registry.config_options(config, "cass", {"max_entries"}) == {}
