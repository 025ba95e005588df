"""The kit's guard: a backend's subclass may not delete or override a contract test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jetpack.shared.testing import MailBusContract, MemoryStoreContract, TaskStoreContract
from jetpack.shared.testing._guard import contract_problems


def test_an_untouched_subclass_passes() -> None:
    class Fine(TaskStoreContract):
        multiprocess = True

        @pytest.fixture
        def store_spec(self) -> Any:  # fixtures and flags are the backend's to set
            return None

        async def test_an_extra_check_of_my_own(self) -> None:
            pass

    assert contract_problems(Fine) == []


@pytest.mark.parametrize(
    ("mark", "why"),
    [
        (None, "overrides test_delete of TaskStoreContract"),
        (pytest.mark.xfail(reason="flaky"), "overrides test_delete"),
        (pytest.mark.xfail(strict=True), "overrides test_delete"),
        (pytest.mark.xfail(strict=True, reason="  "), "overrides test_delete"),
        (pytest.mark.skip(reason="not today"), "overrides test_delete"),
    ],
)
def test_an_override_without_a_strict_xfail_and_a_reason_is_refused(
    mark: pytest.MarkDecorator | None, why: str
) -> None:
    async def test_delete(self: Any, store: Any) -> None:
        pass

    if mark is not None:
        test_delete = mark(test_delete)
    with pytest.raises(TypeError, match=why):
        type("TestBad", (TaskStoreContract,), {"test_delete": test_delete})


def test_a_strict_xfail_with_a_reason_is_allowed() -> None:
    class Waiver(MailBusContract):
        @pytest.mark.xfail(strict=True, reason="this bus has no presence yet")
        async def test_heartbeat_presence_and_offline(self, open_bus: Any) -> None:
            await super().test_heartbeat_presence_and_offline(open_bus)

    assert contract_problems(Waiver) == []


def test_deleting_a_test_or_skipping_the_class_is_refused() -> None:
    with pytest.raises(TypeError, match="deletes test_stats of MemoryStoreContract"):
        type("TestBad", (MemoryStoreContract,), {"test_stats": None})
    with pytest.raises(TypeError, match="deletes test_contract_is_intact"):
        type("TestBad", (MemoryStoreContract,), {"test_contract_is_intact": None})
    with pytest.raises(TypeError, match="marks every test skip"):
        type("TestBad", (MemoryStoreContract,), {"pytestmark": [pytest.mark.skip(reason="x")]})
    with pytest.raises(TypeError, match="marks every test xfail"):
        type("TestBad", (MemoryStoreContract,), {"pytestmark": pytest.mark.xfail(strict=True)})


async def test_a_change_after_the_class_is_made_fails_the_guard_test() -> None:
    class Later(TaskStoreContract):
        pass

    await Later().test_contract_is_intact()
    Later.test_delete = None  # type: ignore[assignment]
    assert contract_problems(Later) == ["Later deletes test_delete of TaskStoreContract"]
    with pytest.raises(AssertionError, match="Later deletes test_delete"):
        await Later().test_contract_is_intact()


def test_multiprocess_tests_follow_the_flag_through_subclasses() -> None:
    class Base(TaskStoreContract):
        pass

    class Processes(Base):
        multiprocess = True

    assert Base.test_claim_race_across_processes is None  # not collected, not skipped
    assert (
        Processes.test_claim_race_across_processes
        is TaskStoreContract.test_claim_race_across_processes
    )
    assert contract_problems(Base) == contract_problems(Processes) == []


BAD_MODULE = """
import pytest
from jetpack.shared.testing import StoreSpec, TaskStoreContract


class TestSilentlyChanged(TaskStoreContract):
    @pytest.fixture
    def store_spec(self):
        return StoreSpec("jetpack.shared.testing:InMemoryTaskStore")

    async def test_get_unknown_returns_none(self, store):
        pass
"""

WAIVED_MODULE = """
import pytest
from jetpack.shared.testing import StoreSpec, TaskStoreContract


class TestWaived(TaskStoreContract):
    @pytest.fixture
    def store_spec(self):
        return StoreSpec("jetpack.shared.testing:InMemoryTaskStore")

    @pytest.mark.xfail(strict=True, reason="this store returns something")
    async def test_get_unknown_returns_none(self, store):
        await super().test_get_unknown_returns_none(store)
        raise AssertionError("pretend the store failed the rule")
"""


def run_pytest(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_backend.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "unknown"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_real_run_fails_on_a_silent_override_and_accepts_a_waiver(tmp_path: Path) -> None:
    bad, waived = tmp_path / "bad", tmp_path / "waived"
    bad.mkdir()
    waived.mkdir()
    failed = run_pytest(bad, BAD_MODULE)
    assert failed.returncode != 0
    assert "overrides test_get_unknown_returns_none" in failed.stdout
    passed = run_pytest(waived, WAIVED_MODULE)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "1 xfailed" in passed.stdout
