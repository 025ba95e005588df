"""The child-process helper of the kit: barrier starts, reports, stop, kill, failures."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from jetpack.shared.testing import Child, ChildError, ChildLink, run_children


def set_up_then_check(link: ChildLink, folder: str, me: int, count: int, rounds: int) -> int:
    """Mark this process set up for each round; after the release, every other must be too."""
    seen = 0
    for round_ in range(rounds):
        Path(folder, f"{round_}-{me}").touch()
        link.ready_blocking()
        seen += sum(Path(folder, f"{round_}-{i}").exists() for i in range(count))
    return seen


async def count_forever(link: ChildLink, start: int) -> None:
    """Report start, start + 1, … until killed."""
    await link.ready()
    value = start
    while True:
        link.report(value)
        value += 1


async def wait_for_stop(link: ChildLink, answer: str) -> str:
    await link.ready()
    link.report("running")
    await link.until_stopped()
    return answer


async def fail_after_ready(link: ChildLink) -> None:
    await link.ready()
    raise RuntimeError("broken worker")


def test_run_children_releases_them_together_each_round(tmp_path: Path) -> None:
    results = run_children(set_up_then_check, [(str(tmp_path), i, 3, 2) for i in range(3)])
    assert results == [6, 6, 6]  # in every round, all three were set up before any went on


def test_reports_are_read_in_order_and_survive_a_kill() -> None:
    with Child(count_forever, 10) as child:
        child.wait_ready()
        child.go()
        assert [child.next_report() for _ in range(3)] == [10, 11, 12]
        assert child.kill() == -signal.SIGKILL
        rest = child.reports()  # what it sent before dying is still there
        assert rest == list(range(13, 13 + len(rest)))
        with pytest.raises(ChildError, match="exited with code -9"):
            child.result()


def test_stop_ends_a_child_that_runs_until_told() -> None:
    with Child(wait_for_stop, "done") as child:
        child.wait_ready()
        child.go()
        assert child.next_report() == "running"
        child.stop()
        assert child.result() == "done"
        assert child.exitcode == 0


def test_a_failing_child_raises_with_its_traceback() -> None:
    with pytest.raises(ChildError, match="RuntimeError: broken worker"):
        run_children(fail_after_ready, [(), ()])


def test_result_before_go_is_refused() -> None:
    with Child(wait_for_stop, "x") as child:
        child.wait_ready()
        with pytest.raises(ChildError, match="call go"):
            child.result()


def test_only_module_level_functions_can_run_in_a_child() -> None:
    def local(link: ChildLink) -> None:
        pass

    with pytest.raises(ValueError, match="module-level"):
        Child(local)
