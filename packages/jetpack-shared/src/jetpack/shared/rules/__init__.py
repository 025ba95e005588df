"""Pure rules shared by every backend: no I/O here, only functions of their inputs.

Backends (and the in-memory reference store) call these so that readiness,
back-off, lease overlap, ranking and ids mean the same thing everywhere.
"""

from jetpack.shared._memory import FLOAT32_MAX, float32_problem
from jetpack.shared.rules._checks import (
    MAX_TTL_MS,
    check_agent_id,
    check_json_object,
    check_text,
    check_ttl,
)
from jetpack.shared.rules._ids import base36, new_id, new_memory_id, new_message_id, new_task_id
from jetpack.shared.rules._messages import Outgoing, outgoing
from jetpack.shared.rules._paths import (
    MAX_PATH_CHARS,
    is_glob,
    normalize_lease_path,
    paths_overlap,
)
from jetpack.shared.rules._ranking import (
    HYBRID_DECISIVE_RATIO,
    HYBRID_TEXT_WEIGHT,
    fuse_hybrid,
    retention_score,
)
from jetpack.shared.rules._tasks import (
    DEFAULT_CLAIM_TTL_MS,
    DEFAULT_RETRY_BASE_MS,
    MAX_RETRY_DELAY_MS,
    Retry,
    blocker_for,
    blocker_names,
    check_imported,
    claim_order_key,
    dependants_closure,
    find_cycle,
    has_skills,
    is_final,
    is_ready,
    next_after_failure,
    plan_block,
    resettle,
    retry_delay_ms,
    status_change,
    topological_order,
)

__all__ = [
    "DEFAULT_CLAIM_TTL_MS",
    "DEFAULT_RETRY_BASE_MS",
    "FLOAT32_MAX",
    "HYBRID_DECISIVE_RATIO",
    "HYBRID_TEXT_WEIGHT",
    "MAX_PATH_CHARS",
    "MAX_RETRY_DELAY_MS",
    "MAX_TTL_MS",
    "Outgoing",
    "Retry",
    "base36",
    "blocker_for",
    "blocker_names",
    "check_agent_id",
    "check_imported",
    "check_json_object",
    "check_text",
    "check_ttl",
    "claim_order_key",
    "dependants_closure",
    "find_cycle",
    "float32_problem",
    "fuse_hybrid",
    "has_skills",
    "is_final",
    "is_glob",
    "is_ready",
    "new_id",
    "new_memory_id",
    "new_message_id",
    "new_task_id",
    "next_after_failure",
    "normalize_lease_path",
    "outgoing",
    "paths_overlap",
    "plan_block",
    "resettle",
    "retention_score",
    "retry_delay_ms",
    "status_change",
    "topological_order",
]
