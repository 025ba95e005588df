"""``python -m jetpack.shared.edge``: install the Worker toolchain now and say where it is.

CI and set-up scripts run it once so the first test or ``jetpack edge dev``
does not wait for ``npm ci``. Needs npm (Node.js ≥ 18) on PATH.
"""

from __future__ import annotations

import sys

from jetpack.shared.edge._toolchain import ToolchainError, ensure_toolchain

__all__ = ["main"]


def main() -> int:
    """Install (if needed) and print the toolchain's folder and Node binary."""
    try:
        toolchain = ensure_toolchain(lambda line: print(line, flush=True))  # noqa: T201
    except ToolchainError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    print(f"toolchain: {toolchain.root}\nnode: {toolchain.node}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
