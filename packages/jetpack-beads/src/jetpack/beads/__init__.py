"""Local task store for Jetpack: SQLite via SQLAlchemy 2 async, atomic claims, dependencies, beads JSONL interop."""

from jetpack.beads.__about__ import __version__

__all__ = ["__version__"]
