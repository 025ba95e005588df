from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from jetpack.shared.config import Backend, Mode, dump_toml, load_config
from jetpack.shared.errors import ValidationError


def write(tmp_path: Path, text: str) -> None:
    (tmp_path / ".jetpack").mkdir(exist_ok=True)
    (tmp_path / ".jetpack" / "config.toml").write_text(text)


def test_defaults_without_file(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={})
    assert config.mode is Mode.LOCAL
    assert config.path(config.local.tasks_db) == tmp_path / ".beads" / "beads.db"
    assert config.backend_for("memory") is Backend.LOCAL


def test_file_then_env_override(tmp_path: Path) -> None:
    write(tmp_path, 'mode = "edge"\n[stores]\nmail = "local"\n[agents]\ncount = 3\n')
    config = load_config(tmp_path, env={"JETPACK_WORKER_URL": "https://w.example"})
    assert config.backend_for("tasks") is Backend.CLOUDFLARE
    assert config.backend_for("mail") is Backend.LOCAL
    assert config.cloudflare.worker_url == "https://w.example"
    assert config.section("agents") == {"count": 3}
    env_local = load_config(tmp_path, env={"JETPACK_MODE": "local"})
    assert env_local.backend_for("tasks") is Backend.LOCAL


def test_bad_value_names_key_and_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        load_config(tmp_path, env={"JETPACK_MODE": "cloudy"})
    assert info.value.field == "mode (JETPACK_MODE)"
    write(tmp_path, '[stores]\ntasks = "nowhere"\n')
    with pytest.raises(ValidationError) as info:
        load_config(tmp_path, env={})
    assert info.value.field == "stores.tasks (.jetpack/config.toml)"
    write(tmp_path, "mode = = broken")
    with pytest.raises(ValidationError):
        load_config(tmp_path, env={})


def test_token_never_in_repr(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={"JETPACK_API_TOKEN": "s3cret-token"})
    assert "s3cret-token" not in repr(config) and "s3cret-token" not in str(config.model_dump())
    assert config.cloudflare.api_token is not None
    assert config.cloudflare.api_token.get_secret_value() == "s3cret-token"


def test_dump_toml_round_trips() -> None:
    data = {"mode": "local", "stores": {"tasks": "local"}, "agents": {"count": 3, "skills": ["py"]}}
    assert tomllib.loads(dump_toml(data)) == data
