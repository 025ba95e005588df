"""Beads JSONL interop for the local task store.

The mapping lives in :mod:`jetpack.shared.beads_jsonl`, shared by every task
store (and by ``jetpack task import/export``); it is re-exported here so that
``from jetpack.beads.jsonl import import_jsonl`` keeps working.
"""

from jetpack.shared.beads_jsonl import (
    BEADS_KEY,
    dumps_issue,
    export_jsonl,
    import_jsonl,
    issue_to_task,
    read_issues,
    task_to_issue,
)

__all__ = [
    "BEADS_KEY",
    "dumps_issue",
    "export_jsonl",
    "import_jsonl",
    "issue_to_task",
    "read_issues",
    "task_to_issue",
]
