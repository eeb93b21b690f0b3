"""The audit trail: private file, durable before acknowledged, torn tails repaired, seq
continuous across reopen, values stored exactly, logs redacted; and the actor shell's
reply-after-fsync and its leaving queued appends in the mailbox when stopped."""

import datetime
import decimal
import functools
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio

from ibkr_connector.actors.audit import (
    AppendAudit,
    AuditTrail,
    AuditTrailError,
    TrailMemory,
    UnstorableRecord,
    read_audit_records,
    redact,
    run_audit,
)
from ibkr_connector.supervisor import ActorCrashed, ChildSpec, SupervisorSpec, open_supervisor

T0 = datetime.datetime(2026, 1, 2, 15, 4, 5, 123456, tzinfo=datetime.UTC)


def _clock() -> datetime.datetime:
    return T0


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the file ------------------------------------------------------------------------


def test_a_new_trail_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        AuditTrail(tmp_path / "audit.jsonl").close()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "audit.jsonl") == 0o600


def test_an_existing_readable_trail_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    path.chmod(0o644)
    AuditTrail(path).close()
    assert _mode(path) == 0o600


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "audit.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        AuditTrail(tmp_path / "audit.jsonl")


def test_records_are_json_lines_with_seq_ts_kind_first(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path, clock=_clock) as trail:
        first = trail.append("order_intent", order_id=11, symbol="SPX")
        trail.append("order_status", order_id=11, status="Submitted")
    lines = path.read_text().splitlines()
    assert lines[0].startswith('{"seq":1,"ts":"2026-01-02T15:04:05.123456Z","kind":"order_intent"')
    assert [r["seq"] for r in _lines(path)] == [1, 2]
    assert (first.seq, first.ts, first.kind) == (1, T0, "order_intent")
    assert dict(first.fields) == {"order_id": 11, "symbol": "SPX"}


def test_decimals_and_floats_are_stored_exactly_as_given(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path) as trail:
        record = trail.append(
            "order_intent", limit=decimal.Decimal("1.05"), tiny=decimal.Decimal("1E-8"),
            ratio=0.1, big=1.7976931348623157e308,
        )
    stored = _lines(path)[0]
    assert (stored["limit"], stored["tiny"]) == ("1.05", "1E-8")
    assert (stored["ratio"], stored["big"]) == (0.1, 1.7976931348623157e308)
    assert record.fields["limit"] == "1.05"  # the record returned is the record stored


def test_records_reads_back_what_was_appended(tmp_path: Path) -> None:
    with AuditTrail(tmp_path / "audit.jsonl", clock=_clock) as trail:
        written = [trail.append("order_status", order_id=i, legs=[{"conId": i}]) for i in range(3)]
        assert list(trail.records()) == written
    assert list(read_audit_records(tmp_path / "audit.jsonl")) == written


def test_append_returns_only_after_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trail = AuditTrail(tmp_path / "audit.jsonl")
    calls: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        # By the time of fsync the whole line has been written.
        calls.append(f"fsync:{len(_lines(tmp_path / 'audit.jsonl'))}")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    trail.append("order_intent", order_id=1)
    calls.append("returned")
    trail.close()
    assert calls == ["fsync:1", "returned"]


def test_seq_continues_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path) as trail:
        trail.append("order_intent", order_id=1)
        trail.append("order_status", order_id=1)
    with AuditTrail(path) as trail:
        assert trail.next_seq == 3
        assert trail.append("order_status", order_id=1).seq == 3
    assert [r["seq"] for r in _lines(path)] == [1, 2, 3]


def test_a_torn_last_line_is_cut_and_the_repair_recorded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path) as trail:
        trail.append("order_intent", order_id=1)
        trail.append("order_intent", order_id=2)
    torn = b'{"seq":3,"ts":"2026-01-02T15:04:05Z","kind":"order_int'
    with path.open("ab") as file:
        file.write(torn)
    with AuditTrail(path) as trail:
        assert trail.append("order_intent", order_id=3).seq == 4
    records = _lines(path)
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert records[2]["kind"] == "audit_recovered"
    assert (records[2]["truncated_bytes"], records[2]["after_seq"]) == (len(torn), 2)
    assert path.read_bytes().endswith(b"\n")


def test_a_trail_that_is_only_a_torn_line_starts_again_at_seq_1(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"seq":1,"ts":')
    path.chmod(0o600)
    AuditTrail(path).close()
    assert [(r["seq"], r["kind"]) for r in _lines(path)] == [(1, "audit_recovered")]


def test_recovery_finds_the_last_record_of_a_large_trail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path) as trail:
        for i in range(40):
            trail.append("order_status", order_id=i, note="x" * 4000)  # > 64 KiB in all
    with path.open("ab") as file:
        file.write(b"y" * 70_000)  # a torn tail longer than one read chunk
    with AuditTrail(path) as trail:
        assert trail.next_seq == 42  # 41 was the recovery record
    assert len(_lines(path)) == 41


def test_a_corrupt_complete_last_record_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path) as trail:
        trail.append("order_intent", order_id=1)
    with path.open("ab") as file:
        file.write(b"not json\n")
    before = path.read_bytes()
    with pytest.raises(AuditTrailError, match="corrupted"):
        AuditTrail(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"seq": 5}, ValueError),
        ({"ts": "now"}, ValueError),
        ({"kind": "other"}, ValueError),
        ({"price": float("nan")}, ValueError),
        ({"blob": object()}, TypeError),
    ],
)
def test_unstorable_fields_are_refused_without_writing_or_using_a_seq(
    tmp_path: Path, fields: dict[str, object], error: type[Exception]
) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditTrail(path) as trail:
        with pytest.raises(error) as caught:
            trail.append("order_intent", **fields)
        assert isinstance(caught.value, UnstorableRecord)
        assert trail.append("order_intent", order_id=1).seq == 1
    assert len(_lines(path)) == 1


def test_a_naive_clock_is_refused(tmp_path: Path) -> None:
    with AuditTrail(tmp_path / "audit.jsonl", clock=datetime.datetime.now) as trail:
        with pytest.raises(ValueError, match="aware"):
            trail.append("order_intent")


def test_a_failed_write_breaks_the_trail_until_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        trail.append("order_intent", order_id=1)
    monkeypatch.undo()
    with pytest.raises(AuditTrailError, match="reopen"):
        trail.append("order_intent", order_id=2)
    trail.close()
    with AuditTrail(path) as reopened:
        # The failed record was cut back: its caller was told it failed and may retry it,
        # and a retried record must be found once, not twice.
        assert reopened.append("order_intent", order_id=2).seq == 1
    assert [line["order_id"] for line in _lines(path)] == [2]


def test_a_write_that_fails_half_way_leaves_no_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path)
    trail.append("note", n=1)
    real_write = os.write

    def short_then_fail(fd: int, data: bytes) -> int:
        monkeypatch.setattr(os, "write", failing_write)
        return real_write(fd, bytes(data[:10]))

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_fail)
    with pytest.raises(OSError):
        trail.append("order_intent", order_id=1)
    monkeypatch.undo()
    trail.close()
    assert path.read_bytes().endswith(b"\n")
    with AuditTrail(path) as reopened:
        assert not any(r.kind == "audit_recovered" for r in reopened.records())
        assert reopened.next_seq == 2


# --- redaction -----------------------------------------------------------------------


def test_redact_masks_accounts_quantities_and_prices_recursively() -> None:
    fields = {
        "order_id": 17,
        "symbol": "SPX",
        "action": "BUY",
        "account": "DU1234567",
        "totalQuantity": decimal.Decimal("3"),
        "lmt_price": decimal.Decimal("1.05"),
        "avgFillPrice": 1.04,
        "legs": [{"conId": 1, "ratio": 1, "price": 2.5}],
        "note": "U7654321",
    }
    shown = redact(fields)
    assert (shown["order_id"], shown["symbol"], shown["action"]) == (17, "SPX", "BUY")
    for key in ("account", "totalQuantity", "lmt_price", "avgFillPrice", "note"):
        assert shown[key] == "***", key
    assert shown["legs"] == [{"conId": 1, "ratio": 1, "price": "***"}]
    assert fields["account"] == "DU1234567"  # the input is untouched


# --- the actor shell -----------------------------------------------------------------


@attrs.define
class FakeEnvelope:
    """The supervisor's envelope contract: message, reply(value), fail(exc)."""

    message: object
    on_reply: Callable[[object], None] | None = None
    result: object = None
    error: BaseException | None = None
    done: trio.Event = attrs.Factory(trio.Event)

    def reply(self, value: object) -> None:
        if self.on_reply is not None:
            self.on_reply(value)
        self.result = value
        self.done.set()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.done.set()


async def test_the_actor_replies_only_after_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    AuditTrail(path).close()
    order: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        order.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)

    def on_reply(record: object) -> None:
        order.append(f"ack, on disk: {len(_lines(path))}")

    send, mailbox = trio.open_memory_channel[FakeEnvelope](10)
    envelope = FakeEnvelope(AppendAudit("order_intent", {"order_id": 5}), on_reply=on_reply)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_audit, mailbox, path)
        await send.send(envelope)
        await envelope.done.wait()
        await send.aclose()
    assert order == ["fsync", "ack, on disk: 1"]
    assert envelope.result is not None and envelope.result.seq == 1  # type: ignore[attr-defined]


async def test_bad_messages_fail_their_caller_and_the_actor_carries_on(tmp_path: Path) -> None:
    spec = SupervisorSpec("root", children=(
        ChildSpec("audit", functools.partial(run_audit, trail_path=tmp_path / "audit.jsonl")),))
    async with open_supervisor(spec) as supervisor:
        audit = supervisor.address("audit")
        with pytest.raises(UnstorableRecord) as bad_fields:
            await audit.call(AppendAudit("order_intent", {"seq": 1}))
        with pytest.raises(UnstorableRecord):
            await audit.call(AppendAudit("order_intent", {"price": float("nan")}))
        with pytest.raises(TypeError, match="no handler"):
            await audit.call("append please")
        record = await audit.call(AppendAudit("order_intent", {"order_id": 1}))
        info = supervisor.tree().find("audit")
    assert isinstance(bad_fields.value, ValueError)  # what callers caught before
    assert record.seq == 1  # the refused records used no seq
    assert info is not None and info.restarts == 0


async def test_a_failed_write_crashes_the_actor_and_the_restart_repairs_the_trail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    spec = SupervisorSpec("root", children=(
        ChildSpec("audit", functools.partial(run_audit, trail_path=path)),))
    async with open_supervisor(spec) as supervisor:
        audit = supervisor.address("audit")
        real_fsync = os.fsync

        def failing_fsync(fd: int) -> None:
            monkeypatch.setattr(os, "fsync", real_fsync)  # the disk recovers at once
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing_fsync)
        with pytest.raises(ActorCrashed):
            await audit.call(AppendAudit("order_intent", {"order_id": 1}))
        retried = await audit.call(AppendAudit("order_intent", {"order_id": 1}))
        info = supervisor.tree().find("audit")
    assert info is not None and info.restarts == 1
    assert retried.seq == 1  # the failed record was cut back: the retry is there once
    assert [line["order_id"] for line in _lines(path)] == [1]


async def test_a_stopped_actor_finishes_its_write_and_leaves_queued_appends_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    AuditTrail(path).close()
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        in_fsync.set()
        assert release.wait(5), "test never released fsync"
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    send, mailbox = trio.open_memory_channel[FakeEnvelope](10)  # owned by "the tree"
    envelopes = [FakeEnvelope(AppendAudit("order_intent", {"order_id": i})) for i in range(3)]
    for envelope in envelopes:
        send.send_nowait(envelope)

    memory = TrailMemory()  # the runtime's: only the first incarnation settles intents
    async with trio.open_nursery() as nursery:
        scope = await nursery.start(_cancellable_audit, mailbox, path, memory)
        await trio.to_thread.run_sync(in_fsync.wait)
        scope.cancel()  # the supervisor stops the actor mid-fsync
        release.set()
    assert envelopes[0].done.is_set() and envelopes[0].error is None
    assert not envelopes[1].done.is_set()
    assert len(_lines(path)) == 1

    monkeypatch.setattr(os, "fsync", real_fsync)
    async with trio.open_nursery() as nursery:  # the next incarnation
        await nursery.start(functools.partial(run_audit, mailbox, path, memory=memory))
        await envelopes[2].done.wait()
        await send.aclose()
    assert [r["order_id"] for r in _lines(path)] == [0, 1, 2]
    assert [r["seq"] for r in _lines(path)] == [1, 2, 3]


async def _cancellable_audit(
    mailbox: trio.MemoryReceiveChannel[FakeEnvelope],
    path: Path,
    memory: TrailMemory,
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(run_audit, mailbox, path, memory=memory))
            task_status.started(scope)
