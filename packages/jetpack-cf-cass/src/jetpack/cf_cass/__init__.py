"""Cloudflare (D1 + Vectorize) memory store for Jetpack."""

from jetpack.cf_cass.__about__ import __version__

__all__ = ["__version__"]
