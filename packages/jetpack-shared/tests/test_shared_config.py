from __future__ import annotations

import logging
import stat
import tomllib
from pathlib import Path

import pytest

from jetpack.shared.config import Backend, Mode, dump_toml, load_config
from jetpack.shared.credentials import (
    Credential,
    credentials_path,
    load_credential,
    permission_problem,
    remove_credential,
    save_credential,
    worker_key,
)
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


def test_dump_toml_quotes_table_names_that_need_it() -> None:
    data = {"https://w.example:8787": {"token": "x"}, "a": {"b c": {"d": 1}}}
    assert tomllib.loads(dump_toml(data)) == data


# ------------------------------------------------------------------ the token's sources
URL = "https://w.example"


def saved(tmp_path: Path, token: str = "jp_saved") -> dict[str, str]:
    """An environment whose credentials file holds ``token`` for URL."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    save_credential(Credential(URL, token, project="acme", token_id="tok_1"), env)
    return env


def test_token_from_the_credentials_file_for_the_configured_worker(tmp_path: Path) -> None:
    env = saved(tmp_path)
    write(tmp_path, f'mode = "edge"\n[cloudflare]\nworker_url = "{URL}/"\n')
    config = load_config(tmp_path, env=env)
    assert config.cloudflare.api_token is not None
    assert config.cloudflare.api_token.get_secret_value() == "jp_saved"
    assert config.cloudflare.api_token_source == str(credentials_path(env))
    assert "jp_saved" not in repr(config) and "api_token_source" not in config.model_dump()
    other = load_config(tmp_path, env={**env, "JETPACK_WORKER_URL": "https://other.example"})
    assert other.cloudflare.api_token is None and other.cloudflare.api_token_source is None


def test_the_variable_wins_over_the_file_and_the_credentials(tmp_path: Path) -> None:
    env = saved(tmp_path)
    write(tmp_path, f'[cloudflare]\nworker_url = "{URL}"\napi_token = "jp_in_file"\n')
    from_file = load_config(tmp_path, env=env)
    assert from_file.cloudflare.api_token is not None
    assert from_file.cloudflare.api_token.get_secret_value() == "jp_in_file"
    assert from_file.cloudflare.api_token_source == ".jetpack/config.toml"
    from_env = load_config(tmp_path, env={**env, "JETPACK_API_TOKEN": "jp_env"})
    assert from_env.cloudflare.api_token is not None
    assert from_env.cloudflare.api_token.get_secret_value() == "jp_env"
    assert from_env.cloudflare.api_token_source == "JETPACK_API_TOKEN"


def test_credentials_file_is_private_atomic_and_keyed_by_worker(tmp_path: Path) -> None:
    env = saved(tmp_path)
    path = credentials_path(env)
    assert path == tmp_path / "xdg" / "jetpack" / "credentials.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    save_credential(Credential("http://127.0.0.1:8787/", "jp_local", project="p"), env)
    assert {p.name for p in path.parent.iterdir()} == {"credentials.toml"}  # no temp files left
    found = load_credential("HTTPS://W.EXAMPLE/", env)
    assert found is not None and found.token == "jp_saved" and found.project == "acme"
    assert "jp_saved" not in repr(found)
    assert worker_key("HTTP://127.0.0.1:8787//") == "http://127.0.0.1:8787"
    assert remove_credential(URL, env) and not remove_credential(URL, env)
    assert load_credential(URL, env) is None
    assert load_credential("http://127.0.0.1:8787", env) is not None
    assert remove_credential("http://127.0.0.1:8787", env) and not path.exists()


def test_credentials_readable_by_others_are_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = saved(tmp_path)
    path = credentials_path(env)
    assert path is not None and permission_problem(path) is None
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert load_credential(URL, env) is not None
    assert "chmod 600" in caplog.text and "jp_saved" not in caplog.text
    assert permission_problem(path) is not None


def test_credentials_need_a_home_and_a_readable_file(tmp_path: Path) -> None:
    assert credentials_path({}) is None
    home = credentials_path({"HOME": str(tmp_path)})
    assert home == tmp_path / ".config/jetpack/credentials.toml"
    assert credentials_path({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.config/jetpack/credentials.toml"
    )
    with pytest.raises(ValidationError, match="HOME"):
        save_credential(Credential(URL, "jp_x"), {})
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    (tmp_path / "jetpack").mkdir()
    (tmp_path / "jetpack" / "credentials.toml").write_text("[broken")
    with pytest.raises(ValidationError) as info:
        load_credential(URL, env)
    assert info.value.field.endswith("credentials.toml")
