"""Cloudflare (D1) task store for Jetpack: httpx client and Worker module."""

from jetpack.cf_beads.__about__ import __version__

__all__ = ["__version__"]
