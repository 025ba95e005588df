"""Local mail bus and file leases for Jetpack, safe across processes."""

from jetpack.mcp_mail.__about__ import __version__

__all__ = ["__version__"]
