"""Local memory store for Jetpack: SQLite FTS5 + vector search fused by RRF."""

from jetpack.cass.__about__ import __version__

__all__ = ["__version__"]
