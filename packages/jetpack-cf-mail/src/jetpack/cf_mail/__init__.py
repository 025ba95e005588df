"""Cloudflare (Durable Objects) mail bus and leases for Jetpack."""

from jetpack.cf_mail.__about__ import __version__

__all__ = ["__version__"]
