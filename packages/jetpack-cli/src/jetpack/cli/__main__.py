"""``python -m jetpack.cli`` and the ``jetpack`` console script."""

from __future__ import annotations

from jetpack.cli._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
