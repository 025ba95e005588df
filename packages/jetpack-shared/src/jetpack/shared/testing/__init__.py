"""The conformance kit: contract test classes, reference stores and helpers.

Install with ``pip install jetpack-shared[testing]``; ``jetpack.shared`` never
imports this package. A backend's tests subclass :class:`TaskStoreContract`,
:class:`MailBusContract` or :class:`MemoryStoreContract` and supply one
:class:`StoreSpec` fixture. The in-memory reference stores pass the kit (that
is how the kit itself is tested); they are test aids, never registered backends.
"""

from jetpack.shared.testing._helpers import eventually
from jetpack.shared.testing._mail_contract import MailBusContract
from jetpack.shared.testing._memory_contract import KitEmbedder, MemoryStoreContract
from jetpack.shared.testing._mixed import MixedReport, run_mixed_load
from jetpack.shared.testing._procs import first_open_race
from jetpack.shared.testing._reference_mail import InMemoryMailBus, InMemoryMailHub
from jetpack.shared.testing._reference_memory import InMemoryMemoryDB, InMemoryMemoryStore
from jetpack.shared.testing._reference_tasks import InMemoryTaskStore
from jetpack.shared.testing._spec import StoreSpec
from jetpack.shared.testing._task_contract import TaskStoreContract

__all__ = [
    "InMemoryMailBus",
    "InMemoryMailHub",
    "InMemoryMemoryDB",
    "InMemoryMemoryStore",
    "InMemoryTaskStore",
    "KitEmbedder",
    "MailBusContract",
    "MemoryStoreContract",
    "MixedReport",
    "StoreSpec",
    "TaskStoreContract",
    "eventually",
    "first_open_race",
    "run_mixed_load",
]
