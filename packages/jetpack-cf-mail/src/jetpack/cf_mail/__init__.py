"""Cloudflare (Durable Objects) mail bus and leases for Jetpack."""

from jetpack.cf_mail.__about__ import __version__
from jetpack.cf_mail._edge import EDGE_MODULE

__all__ = ["EDGE_MODULE", "__version__"]
