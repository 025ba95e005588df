"""CloudflareMailBus as a backend: exports, config, registry, repr, options; its Worker
module (type-checked alone, as cf-mail's own CI job builds it); zod ≡ pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import jetpack.cf_mail
from jetpack.cf_mail import EDGE_MODULE, CloudflareMailBus, DeadLetter
from jetpack.shared import AgentPresence, Lease, LeaseStatus, MailBus, Message
from jetpack.shared.config import load_config
from jetpack.shared.edge import build_worker, check_types, discover_modules, ensure_toolchain
from jetpack.shared.errors import UnavailableError, ValidationError
from jetpack.shared.registry import create_store, discover_backends
from jetpack.shared.testing.edge import EdgeWorker

TOKEN = "jp_secret-value-not-to-print"


def test_all_is_sorted_and_importable() -> None:
    names = jetpack.cf_mail.__all__
    assert names == sorted(
        names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    for name in names:
        assert hasattr(jetpack.cf_mail, name)


def test_from_config_reads_the_cloudflare_table_and_the_token_variable(tmp_path: Path) -> None:
    (tmp_path / ".jetpack").mkdir()
    (tmp_path / ".jetpack" / "config.toml").write_text(
        '[stores]\nmail = "cloudflare"\n[cloudflare]\nworker_url = "https://jp.example.dev"\n'
        "[cf_mail]\npresence_window_ms = 1234\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path, env={"JETPACK_API_TOKEN": TOKEN})
    bus = create_store(config, "mail", agent_id="agent-7")
    assert isinstance(bus, CloudflareMailBus) and isinstance(bus, MailBus)
    assert bus.agent_id == "agent-7" and bus._options.presence_window_ms == 1234
    assert repr(bus) == "CloudflareMailBus(agent_id='agent-7', worker_url='https://jp.example.dev')"
    assert TOKEN not in repr(bus) and TOKEN not in str(vars(bus))
    assert TOKEN not in repr(bus._socket) and TOKEN not in repr(bus._leases)
    with pytest.raises(ValidationError) as info:
        create_store(load_config(tmp_path, env={}), "mail", agent_id="a")
    assert info.value.field == "cloudflare.api_token"
    bare = load_config(tmp_path / "nowhere", env={"JETPACK_API_TOKEN": TOKEN})
    with pytest.raises(ValidationError) as info:
        CloudflareMailBus.from_config(bare, agent_id="a")
    assert info.value.field == "cloudflare.worker_url"


def test_unknown_keys_of_the_cf_mail_table_are_logged_and_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".jetpack").mkdir()
    (tmp_path / ".jetpack" / "config.toml").write_text(
        '[cloudflare]\nworker_url = "https://jp.example.dev"\n'
        "[cf_mail]\nretries = 2\nretires = 9\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path, env={"JETPACK_API_TOKEN": TOKEN})
    with caplog.at_level("WARNING", logger="jetpack.shared.registry"):
        bus = CloudflareMailBus.from_config(config, agent_id="a")
    assert bus._options.retries == 2
    assert "'retires' in [cf_mail]" in caplog.text and "did you mean 'retries'" in caplog.text
    with pytest.raises(ValidationError) as info:
        CloudflareMailBus.from_config(config, agent_id="a", retires=9)
    assert info.value.field == "retires" and "did you mean 'retries'" in str(info.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"nope": 1}, "nope"),
        ({"presence_window_ms": 0}, "presence_window_ms"),
        ({"retries": -1}, "retries"),
        ({"handler_attempts": True}, "handler_attempts"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CloudflareMailBus("a", "https://jp.example.dev", TOKEN, **options)
    assert info.value.field == field


async def test_a_closed_bus_refuses_and_an_unreachable_worker_is_unavailable() -> None:
    bus = CloudflareMailBus("a", "http://127.0.0.1:9", TOKEN, retries=0, open_timeout_ms=1000)
    with pytest.raises(UnavailableError):
        await bus.publish("task.created", {})
    with pytest.raises(UnavailableError):
        await bus.initialize()


def test_registered_as_backend_and_as_edge_module() -> None:
    assert any(b.name == "mail.cloudflare" for b in discover_backends())
    assert EDGE_MODULE in discover_modules()
    names = [do.class_name for do in EDGE_MODULE.durable_objects]
    assert names == ["MailboxDO", "LeaseDO"]
    assert EDGE_MODULE.durable_object_migrations[0]["new_sqlite_classes"] == names


def test_the_mail_module_alone_type_checks(tmp_path: Path) -> None:
    toolchain = ensure_toolchain()
    built = build_worker(tmp_path / "worker", modules=[EDGE_MODULE], toolchain=toolchain)
    config = built.config()
    assert [b["class_name"] for b in config["durable_objects"]["bindings"]] == [
        "MailboxDO",
        "LeaseDO",
    ]
    check_types(built, toolchain)


def test_zod_schemas_name_the_same_fields_as_the_pydantic_models(edge_worker: EdgeWorker) -> None:
    status, doc = edge_worker.call("GET", "/api/openapi.json")
    assert status == 200
    schemas = doc["components"]["schemas"]
    for zod_name, model in (
        ("Message", Message),
        ("Lease", Lease),
        ("LeaseStatus", LeaseStatus),
        ("AgentPresence", AgentPresence),
        ("DeadLetter", DeadLetter),
    ):
        assert set(schemas[zod_name]["properties"]) == set(model.model_fields), zod_name
    paths = doc["paths"]
    for path in (
        "/api/mail/publish",
        "/api/mail/subscribe",
        "/api/mail/lease",
        "/api/mail/lease/socket",
        "/api/mail/inbox",
        "/api/mail/ack",
        "/api/mail/heartbeat",
        "/api/mail/agents",
        "/api/mail/leases",
    ):
        assert path in paths, path
    assert set(paths["/api/mail/lease"]) >= {"get", "post", "delete"}
