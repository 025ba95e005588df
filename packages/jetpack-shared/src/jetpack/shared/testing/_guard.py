"""The guard of the kit: a backend may not silently drop or change a contract test.

A backend's test class subclasses a contract and adds fixtures and capability
flags. It may not override or delete a contract test; the one exception is a
test it cannot pass yet, which it overrides with
``@pytest.mark.xfail(strict=True, reason="…")`` (strict: the day it passes,
the run fails and the mark must go)::

    class TestMyStore(TaskStoreContract):
        @pytest.mark.xfail(strict=True, reason="claims across machines need the edge")
        async def test_claim_race_across_processes(self, store, store_spec):
            await super().test_claim_race_across_processes(store, store_spec)

The check runs twice: when the subclass is created (a class body that deletes
or overrides a test fails at import, so the whole module fails to collect) and
as the contract's own test ``test_contract_is_intact`` (for changes made to
the class afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["KitContract", "contract_problems"]

_ADVICE = (
    "a backend may not drop or change a kit test; mark one it cannot pass "
    '@pytest.mark.xfail(strict=True, reason="…") in an override that calls super() '
    "(see Troubleshooting in jetpack-shared's README)"
)


def _is_strict_xfail(value: object) -> bool:
    """An override the guard accepts: strict xfail with a reason, and no skip."""
    if not callable(value):
        return False
    marks = getattr(value, "pytestmark", [])
    if any(getattr(mark, "name", "") in ("skip", "skipif") for mark in marks):
        return False
    return any(
        mark.name == "xfail"
        and mark.kwargs.get("strict") is True
        and isinstance(mark.kwargs.get("reason"), str)
        and mark.kwargs["reason"].strip() != ""
        for mark in marks
    )


def _tests_of(contract: type) -> dict[str, Callable[..., Any]]:
    return {
        name: getattr(contract, name)
        for name in dir(contract)
        if name.startswith("test_") and callable(getattr(contract, name, None))
    }


def _contracts_of(cls: type) -> list[type[KitContract]]:
    return [c for c in cls.__mro__ if c.__dict__.get("_kit_contract", False)]


def _problem(cls: type, contract: type, name: str, value: object) -> str | None:
    if value is None:
        return f"{cls.__name__} deletes {name} of {contract.__name__}"
    if not _is_strict_xfail(value):
        return (
            f"{cls.__name__} overrides {name} of {contract.__name__} "
            "without xfail(strict=True, reason=...)"
        )
    return None


def _class_marks(cls: type) -> list[str]:
    marks = cls.__dict__.get("pytestmark", [])
    if not isinstance(marks, list | tuple):
        marks = [marks]
    return [
        f"{cls.__name__} marks every test {mark.name}"
        for mark in marks
        if getattr(mark, "name", "") in ("skip", "skipif", "xfail")
    ]


def contract_problems(cls: type) -> list[str]:
    """What ``cls`` (a subclass of a kit contract) changed that it may not; empty if nothing.

    Every contract test must be the contract's own, a strict xfail override with
    a reason, or (only for the multi-process tests of a backend that declares
    ``multiprocess = False``) absent; no class in between may mark them all
    skip, skipif or xfail.
    """
    problems: list[str] = []
    for contract in _contracts_of(cls):
        if contract is cls:
            continue
        optional = (
            set()
            if getattr(cls, "multiprocess", False)
            else set(getattr(contract, "multiprocess_tests", ()))
        )
        for name, original in _tests_of(contract).items():
            value = getattr(cls, name, None)
            if value is original or (value is None and name in optional):
                continue
            problem = _problem(cls, contract, name, value)
            if problem:
                problems.append(problem)
    for klass in cls.__mro__:
        if not klass.__dict__.get("_kit_contract", False):
            problems += _class_marks(klass)
    return list(dict.fromkeys(problems))


class KitContract:
    """Base of the kit's contract classes: the guard, and the multi-process switch.

    A contract is declared ``class TaskStoreContract(KitContract, kit=True)``;
    its multi-process tests are named in ``multiprocess_tests``. A backend's
    subclass sets ``multiprocess = True`` when it is safe across OS processes;
    with False those tests are not collected at all (never skipped).
    """

    _kit_contract: ClassVar[bool] = False
    multiprocess: ClassVar[bool] = False
    """Set True when the backend shares state across OS processes (races then use 4)."""
    multiprocess_tests: ClassVar[tuple[str, ...]] = ()
    """The contract's tests that need ``multiprocess = True``."""

    def __init_subclass__(cls, kit: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._kit_contract = kit
        if kit:
            return
        problems = [
            problem
            for contract in _contracts_of(cls)
            for name in _tests_of(contract)
            if name in cls.__dict__
            and (problem := _problem(cls, contract, name, cls.__dict__[name])) is not None
        ]
        problems += _class_marks(cls)
        if problems:
            raise TypeError("; ".join(problems) + f": {_ADVICE}")
        for contract in _contracts_of(cls):
            for name in contract.multiprocess_tests:
                if not cls.multiprocess:
                    setattr(cls, name, None)
                elif getattr(cls, name, None) is None:
                    setattr(cls, name, _tests_of(contract)[name])

    async def test_contract_is_intact(self) -> None:
        """No contract test of this backend's class is deleted or overridden (see the guard)."""
        problems = contract_problems(type(self))
        assert problems == [], "; ".join(problems) + f": {_ADVICE}"
