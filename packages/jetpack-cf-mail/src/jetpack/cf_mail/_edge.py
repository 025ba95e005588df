"""The mail bus's part of the Jetpack Worker: its routes and two Durable Objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetpack.shared.edge import DurableObjectBinding, EdgeModule

__all__ = ["EDGE_MODULE", "RETENTION_FEATURE"]

RETENTION_FEATURE = "mail_retention_ms"
"""Build feature: how long the mailbox keeps messages (default 7 days); tests set it short."""


def _configure(config: dict[str, Any], features: Mapping[str, Any]) -> None:
    retention = features.get(RETENTION_FEATURE)
    if retention is not None:
        config["vars"]["JETPACK_MAIL_RETENTION_MS"] = str(int(retention))


EDGE_MODULE = EdgeModule(
    name="mail",
    package="jetpack.cf_mail",
    durable_objects=(
        DurableObjectBinding("MAILBOX", "MailboxDO"),
        DurableObjectBinding("LEASES", "LeaseDO"),
    ),
    durable_object_migrations=({"tag": "mail-v1", "new_sqlite_classes": ["MailboxDO", "LeaseDO"]},),
    configure=_configure,
)
"""Registered under the ``jetpack.edge`` entry-point group as ``mail``: a MailboxDO and a
LeaseDO per project (``idFromName(project)``), both SQLite-backed."""
