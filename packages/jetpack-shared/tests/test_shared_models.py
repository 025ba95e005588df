from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import jetpack.shared as shared
from jetpack.shared import (
    MemoryEntry,
    MemoryInput,
    Message,
    MessageType,
    Task,
    TaskInput,
    TaskUpdate,
    parse,
    utcnow,
)
from jetpack.shared.errors import (
    ConflictError,
    JetpackError,
    LeaseHeldError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)


def test_public_all_is_sorted_and_complete() -> None:
    assert list(shared.__all__) == sorted(shared.__all__, key=lambda n: (not n.isupper(), n))
    for name in shared.__all__:
        assert hasattr(shared, name), name


def test_message_types_are_the_nineteen() -> None:
    assert len(MessageType) == 19
    assert MessageType("task.retry_scheduled") is MessageType.TASK_RETRY_SCHEDULED


def test_datetimes_are_utc_and_naive_is_refused() -> None:
    plus2 = timezone(timedelta(hours=2))
    t = Task(
        id="bd-1", title="t", created_at=datetime(2026, 1, 1, 12, tzinfo=plus2), updated_at=utcnow()
    )
    assert t.created_at.utcoffset() == timedelta(0) and t.created_at.hour == 10
    with pytest.raises(ValidationError) as info:
        parse(
            Task,
            {
                "id": "bd-1",
                "title": "t",
                "created_at": datetime(2026, 1, 1),
                "updated_at": utcnow(),
            },
        )
    assert info.value.field == "created_at"


def test_exact_json_round_trip() -> None:
    now = utcnow()
    task = Task(
        id="bd-1", title="t", created_at=now, updated_at=now, metadata={"x": [1, {"y": None}]}
    )
    assert Task.model_validate_json(task.model_dump_json()) == task
    msg = Message(id="msg-1", type=MessageType.HEARTBEAT, from_agent="a", timestamp=now, seq=3)
    assert Message.model_validate_json(msg.model_dump_json()) == msg
    mem = MemoryEntry(
        id="mem-1", type="agent_learning", content="c", created_at=now, last_accessed=now
    )
    assert MemoryEntry.model_validate_json(mem.model_dump_json()) == mem


def test_task_input_dedupes_and_refuses_held_status() -> None:
    ti = parse(TaskInput, {"title": "t", "tags": ["a", "a", "b"]})
    assert ti.tags == ["a", "b"]
    with pytest.raises(ValidationError) as info:
        parse(TaskInput, {"title": "t", "status": "in_progress"})
    assert info.value.field == "status"


def test_task_update_tracks_set_fields_and_refuses_null_title() -> None:
    upd = parse(TaskUpdate, TaskUpdate(description="d"))
    assert upd.model_fields_set == {"description"}
    with pytest.raises(ValidationError) as info:
        parse(TaskUpdate, {"title": None})
    assert info.value.field == "title"


def test_memory_input_refuses_bad_vectors_and_importance() -> None:
    for field, value in [("embedding", []), ("embedding", [0.0, 0.0]), ("importance", 2.0)]:
        data: dict[str, object] = {"type": "agent_learning", "content": "c", field: value}
        with pytest.raises(ValidationError) as info:
            parse(MemoryInput, data)
        assert info.value.field == field


def test_parse_refuses_non_mappings() -> None:
    with pytest.raises(ValidationError) as info:
        parse(TaskInput, ["not", "a", "dict"])  # type: ignore[arg-type]
    assert info.value.field == "TaskInput"


def test_error_tree_and_retryability() -> None:
    assert issubclass(LeaseHeldError, ConflictError) and issubclass(ConflictError, JetpackError)
    assert UnavailableError("down").retryable and not ConflictError("x").retryable
    err = LeaseHeldError("src/a.py", "agent-2", datetime(2026, 1, 1, 12, 3, 4), pattern="src/**")
    assert str(err) == "lease on 'src/a.py' held by agent-2 until 12:03:04 (through 'src/**')"
    assert str(NotFoundError("task", "bd-1")) == "task 'bd-1' not found"
    assert isinstance(ValidationError("f", "bad"), ValueError)
