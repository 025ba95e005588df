"""The task store's part of the Jetpack Worker: its routes and D1 tables."""

from __future__ import annotations

from jetpack.shared.edge import EdgeModule

__all__ = ["EDGE_MODULE"]

EDGE_MODULE = EdgeModule(name="tasks", package="jetpack.cf_beads")
"""Registered under the ``jetpack.edge`` entry-point group as ``tasks``."""
