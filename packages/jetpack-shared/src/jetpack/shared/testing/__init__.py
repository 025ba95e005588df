"""The conformance kit: contract test classes, reference stores and helpers.

Install with ``pip install jetpack-shared[testing]``; ``jetpack.shared`` never
imports this package. A backend's tests subclass :class:`TaskStoreContract`,
:class:`MailBusContract` or :class:`MemoryStoreContract` and supply one
:class:`StoreSpec` fixture. The in-memory reference stores pass the kit (that
is how the kit itself is tested); they are test aids, never registered backends.
:func:`judge_lease_path_rules` judges any implementation of the lease path
rules (the Worker's TypeScript too) by the cases the Python rules pass. Shared
test data (the beads sample, the memory-eval set) ships in ``data/``:
read it with :func:`sample_path` and :func:`memory_eval_set`. Multi-process
tests run their workers through :class:`Child` and :func:`run_children`.
"""

from jetpack.shared.testing._children import Child, ChildError, ChildLink, run_children
from jetpack.shared.testing._data import (
    EvalQuery,
    MemoryEvalSet,
    memory_eval_set,
    recall_at,
    sample_path,
)
from jetpack.shared.testing._helpers import eventually
from jetpack.shared.testing._mail_contract import MailBusContract
from jetpack.shared.testing._memory_contract import KitEmbedder, MemoryStoreContract
from jetpack.shared.testing._mixed import MixedReport, run_mixed_load
from jetpack.shared.testing._model import agree_on_random_work
from jetpack.shared.testing._paths import (
    judge_lease_path_rules,
    lease_overlap_cases,
    lease_path_normal_forms,
)
from jetpack.shared.testing._procs import first_open_race
from jetpack.shared.testing._reference_mail import InMemoryMailBus, InMemoryMailHub
from jetpack.shared.testing._reference_memory import InMemoryMemoryDB, InMemoryMemoryStore
from jetpack.shared.testing._reference_tasks import InMemoryTaskStore
from jetpack.shared.testing._spec import StoreSpec
from jetpack.shared.testing._task_contract import TaskStoreContract

__all__ = [
    "Child",
    "ChildError",
    "ChildLink",
    "EvalQuery",
    "InMemoryMailBus",
    "InMemoryMailHub",
    "InMemoryMemoryDB",
    "InMemoryMemoryStore",
    "InMemoryTaskStore",
    "KitEmbedder",
    "MailBusContract",
    "MemoryEvalSet",
    "MemoryStoreContract",
    "MixedReport",
    "StoreSpec",
    "TaskStoreContract",
    "agree_on_random_work",
    "eventually",
    "first_open_race",
    "judge_lease_path_rules",
    "lease_overlap_cases",
    "lease_path_normal_forms",
    "memory_eval_set",
    "recall_at",
    "run_children",
    "run_mixed_load",
    "sample_path",
]
