"""Composing a Worker: the gateway plus modules from several packages, bindings, tsc, workerd.

Two throw-away modules (``alpha`` with a Durable Object behind a WebSocket
route, ``beta`` with a plain route), each in its own importable package, are
built into one Worker, type-checked and run, as cf-mail and cf-cass will be.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from jetpack.shared.edge import (
    BuildOptions,
    DurableObjectBinding,
    EdgeModule,
    ToolchainError,
    VectorizeBinding,
    build_worker,
    check_types,
    ensure_toolchain,
    worker_data,
    wrangler_config,
)
from jetpack.shared.testing.edge import EdgeWorker

ALPHA_TS = """\
import { DurableObject } from "cloudflare:workers";
import { type GatewayApp, type JetpackModule, projectOf } from "@jetpack/gateway";

/** Echoes WebSocket text frames, tagged with the project it was reached for. */
export class EchoObject extends DurableObject {
  override async fetch(request: Request): Promise<Response> {
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [request.headers.get("X-Project") ?? "?"]);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const [project] = this.ctx.getTags(ws);
    ws.send(`${project}:${typeof message === "string" ? message : "binary"}`);
  }
}

function register(app: GatewayApp): void {
  app.get("/api/alpha/ws", async (c) => {
    const { project } = projectOf(c);
    const namespace = c.env.ECHO as DurableObjectNamespace;
    const stub = namespace.get(namespace.idFromName(project));
    const headers = new Headers(c.req.raw.headers);
    headers.set("X-Project", project);
    return await stub.fetch(new Request(c.req.raw.url, { headers }));
  });
}

const alpha: JetpackModule = { name: "alpha", register };
export default alpha;
"""

BETA_TS = """\
import { type GatewayApp, type JetpackModule, PROJECT, projectOf, sql } from "@jetpack/gateway";

function register(app: GatewayApp): void {
  app.get("/api/beta/count", async (c) => {
    const row = await c.var.db.first<{ n: number }>(
      sql`SELECT count(*) AS n FROM beta_items WHERE project = ${PROJECT}`,
    );
    return c.json({ project: projectOf(c).project, n: row?.n ?? 0 });
  });
}

const beta: JetpackModule = { name: "beta", register };
export default beta;
"""

BETA_SQL = """\
CREATE TABLE beta_items (project TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (project, id));
"""


def write_package(root: Path, name: str, files: dict[str, str]) -> None:
    package = root / name
    (package / "worker" / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    for relative, text in files.items():
        (package / "worker" / relative).write_text(text, encoding="utf-8")


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[EdgeModule]:
    suffix = tmp_path.name.replace("-", "_").lower()
    alpha_pkg, beta_pkg = f"jp_alpha_{suffix}", f"jp_beta_{suffix}"
    write_package(tmp_path / "src", alpha_pkg, {"routes.ts": ALPHA_TS})
    write_package(
        tmp_path / "src", beta_pkg, {"routes.ts": BETA_TS, "migrations/0001_items.sql": BETA_SQL}
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))

    def tweak(config: dict[str, object], features: object) -> None:
        if isinstance(features, dict) and features.get("alpha_flag"):
            config.setdefault("vars", {})["ALPHA_FLAG"] = "on"  # type: ignore[index]

    alpha = EdgeModule(
        name="alpha",
        package=alpha_pkg,
        durable_objects=[DurableObjectBinding("ECHO", "EchoObject")],
        durable_object_migrations=[{"tag": "alpha-v1", "new_sqlite_classes": ["EchoObject"]}],
        configure=tweak,
    )
    return [alpha, EdgeModule(name="beta", package=beta_pkg)]


def test_the_build_folder_holds_sources_config_and_migrations(
    tmp_path: Path, modules: list[EdgeModule]
) -> None:
    options = BuildOptions(rate_limit=7, cors_origins=("https://app.example",))
    built = build_worker(tmp_path / "out", options, modules=modules)
    root = built.root
    assert (root / "src" / "gateway" / "app.ts").exists()
    assert (root / "src" / "modules" / "alpha" / "routes.ts").exists()
    assert (root / "migrations" / "gateway" / "0001_init.sql").exists()
    assert (root / "migrations" / "beta" / "0001_items.sql").exists()
    index = (root / "src" / "index.ts").read_text(encoding="utf-8")
    assert 'export { EchoObject } from "./modules/alpha/routes";' in index
    assert "createWorker([module_alpha, module_beta])" in index
    config = built.config()
    assert config["ratelimits"][0]["simple"] == {"limit": 7, "period": 10}
    assert config["vars"]["JETPACK_CORS_ORIGINS"] == "https://app.example"
    assert config["d1_databases"][0]["migrations_pattern"] == "migrations/*/*.sql"
    assert config["durable_objects"]["bindings"] == [{"name": "ECHO", "class_name": "EchoObject"}]
    assert config["migrations"] == [{"tag": "alpha-v1", "new_sqlite_classes": ["EchoObject"]}]
    assert (root / "package-lock.json").read_bytes() == (
        worker_data() / "package-lock.json"
    ).read_bytes()


def test_config_of_vectorize_ai_and_build_features(
    modules: list[EdgeModule], tmp_path: Path
) -> None:
    memory = EdgeModule(
        name="memory",
        package=modules[1].package,
        vectorize=[VectorizeBinding("VECTORS", "jetpack-memories", 384)],
        ai_binding="AI",
    )
    config = wrangler_config([*modules, memory], BuildOptions(features={"alpha_flag": True}))
    assert config["vectorize"] == [{"binding": "VECTORS", "index_name": "jetpack-memories"}]
    assert config["ai"] == {"binding": "AI"}
    assert config["vars"]["ALPHA_FLAG"] == "on"
    assert "ALPHA_FLAG" not in wrangler_config(modules, BuildOptions())["vars"]
    # Traces when deployed; local runs (jetpack edge dev, the fixture) build without.
    assert config["observability"] == {"enabled": True}
    local = wrangler_config(modules, BuildOptions(observability=False))
    assert local["observability"] == {"enabled": False}


def test_bad_options_and_migration_names_are_refused(
    tmp_path: Path, modules: list[EdgeModule]
) -> None:
    with pytest.raises(ValueError, match="10 or 60"):
        BuildOptions(rate_limit_period=30)
    with pytest.raises(ValueError, match="cors origin"):
        BuildOptions(cors_origins=("https://x.example/path",))
    (modules[1].worker_dir / "migrations" / "extra.sql").write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(ToolchainError, match=r"NNNN_words\.sql"):
        build_worker(tmp_path / "out", modules=modules)


def test_gateway_and_modules_type_check(tmp_path: Path, modules: list[EdgeModule]) -> None:
    toolchain = ensure_toolchain()
    check_types(build_worker(tmp_path / "out", modules=modules, toolchain=toolchain), toolchain)
    gateway_only = build_worker(tmp_path / "bare", modules=[], toolchain=toolchain)
    check_types(gateway_only, toolchain)
    (gateway_only.root / "src" / "gateway" / "oops.ts").write_text(
        'export const n: number = "text";\n', encoding="utf-8"
    )
    with pytest.raises(ToolchainError, match="TS2322"):
        check_types(gateway_only, toolchain)


@pytest.fixture
def composed(tmp_path: Path, modules: list[EdgeModule]) -> Iterator[EdgeWorker]:
    worker = EdgeWorker.start(tmp_path / "worker", modules=modules)
    yield worker
    worker.stop()


def websocket_echo(url: str, path: str, token: str | None, text: str) -> tuple[str, str]:
    """A minimal RFC 6455 client: handshake, one masked text frame, one frame back."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{auth}\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        status_line, _, rest = head.partition(b"\r\n")
        if b" 101 " not in status_line:
            headers, _, body = head.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += sock.recv(4096)
            return status_line.decode(), body.decode()
        payload = text.encode()
        mask = os.urandom(4)
        frame = bytes([0x81, 0x80 | len(payload)]) + mask
        frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(frame)
        data = rest.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in rest else b""
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            data += sock.recv(4096)
        return status_line.decode(), data[2 : 2 + (data[1] & 0x7F)].decode()


def test_composed_worker_serves_every_module_with_websockets_through_the_gateway(
    composed: EdgeWorker,
) -> None:
    project = composed.new_project()
    status, health = composed.call("GET", "/api/health")
    assert health["modules"] == ["alpha", "beta"]
    status, count = composed.call("GET", "/api/beta/count", token=project.token)
    assert status == 200 and count == {"project": project.project, "n": 0}
    line, echoed = websocket_echo(composed.url, "/api/alpha/ws", project.token, "hello")
    assert " 101 " in line and echoed == f"{project.project}:hello"
    line, body = websocket_echo(composed.url, "/api/alpha/ws", None, "hello")
    assert " 401 " in line and json.loads(body)["error"]["code"] == "unauthorized"
