"""The audit trail file: an append-only, fsync'd JSON-lines record of every order intent.

Whoever sends an order (the orders actor, or ``Runtime.submit`` for a raw request) writes
an ``order_intent`` (or ``cancel_intent``) record *before* the request reaches the limiter,
and so the wire; the limiter refuses an order without one.
What became of each intent follows as an ``order_outcome`` record, and TWS's word on the
order as ``order_status`` and ``execution`` records. So the trail must be durable (a record
is acknowledged only after ``os.fsync``), survive a crash in the middle of a write (a torn
last line is cut off on the next open and the repair itself recorded), and keep its
sequence numbers running across restarts.

One record per line, keys in this order::

    {"seq": 7, "ts": "2026-01-02T15:04:05.123456Z", "kind": "order_intent", ...fields}

The file is private (mode 0600): it is complete, with accounts, quantities and prices.
What may go to the *log* is :func:`redact` of the fields.

Everything here is synchronous file I/O; the actor in :mod:`.audit` runs it in a worker
thread. What an intent's outcome records look like, and how a trail is scanned at start
for intents that never got one, is in :mod:`.audit_outcomes`.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import logging
import os
import re
import stat
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .._errors import IBKRError

__all__ = [
    "AuditRecord",
    "AuditTrail",
    "AuditTrailError",
    "CorruptTrail",
    "UnstorableRecord",
    "read_audit_records",
    "redact",
]

logger = logging.getLogger(__name__)

_RESERVED = frozenset({"seq", "ts", "kind"})
_TAIL_CHUNK = 64 * 1024


class AuditTrailError(IBKRError):
    """The trail cannot be used safely: unreadable, not ours, or broken by a failed write."""


class CorruptTrail(AuditTrailError, ValueError):
    """A complete line of the trail is not a record: damage a crash cannot explain."""


class UnstorableRecord(AuditTrailError, ValueError, TypeError):
    """A record that cannot be stored, and was not: an empty kind, a reserved field name, a
    value of a type JSON cannot hold (a ``TypeError`` before) or a non-finite float (a
    ``ValueError`` before). Both builtins stay bases, so code written against them works.
    """


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _format_ts(moment: datetime.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the audit clock must return an aware datetime")
    text = moment.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def _json_default(value: object) -> object:
    # Decimal as its exact string: a price of 1.05 must not become 1.0500000000000000444.
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"audit field of type {type(value).__name__} is not JSON-serialisable")


def frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy: records and messages are immutable, their fields too."""
    return types.MappingProxyType(dict(value))


@attrs.frozen
class AuditRecord:
    """One record as stored: Decimal fields read back as their strings."""

    seq: int
    ts: datetime.datetime
    kind: str
    fields: Mapping[str, Any] = attrs.field(converter=frozen_mapping)

    @classmethod
    def from_json(cls, line: bytes | str) -> AuditRecord:
        """Parse one stored line. Raises ValueError if it is not a record."""
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("audit line is not a JSON object")
        seq, ts, kind = obj.pop("seq", None), obj.pop("ts", None), obj.pop("kind", None)
        if type(seq) is not int or not isinstance(ts, str) or not isinstance(kind, str):
            raise ValueError("audit line lacks seq/ts/kind")
        return cls(seq=seq, ts=datetime.datetime.fromisoformat(ts), kind=kind, fields=obj)


def read_audit_records(path: str | os.PathLike[str]) -> Iterator[AuditRecord]:
    """Read the complete records of a trail without opening it for writing.

    A torn last line (no newline) is skipped, not repaired: repairing is the writer's job.
    Any other line that is not a record raises :class:`CorruptTrail`.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                return
            try:
                record = AuditRecord.from_json(line)
            except ValueError as exc:
                raise CorruptTrail(f"audit trail {path}: line {number} is not a record") from exc
            yield record


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(path: Path) -> None:
    # A new file's directory entry is durable only once its directory is fsync'd.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _last_complete_line(fd: int, size: int) -> tuple[int, bytes | None]:
    """(offset just past the last newline, the line before it) -- read from the end."""
    buffer = b""
    position = size
    while position > 0:
        step = min(_TAIL_CHUNK, position)
        position -= step
        buffer = os.pread(fd, step, position) + buffer
        last_newline = buffer.rfind(b"\n")
        if last_newline == -1:
            continue
        previous_newline = buffer.rfind(b"\n", 0, last_newline)
        if previous_newline == -1 and position > 0:
            continue
        return position + last_newline + 1, buffer[previous_newline + 1 : last_newline]
    return 0, None


class AuditTrail:
    """An open audit trail file; single writer, not thread-safe (one actor owns it).

    Opening creates the file with mode 0600 (or tightens an existing one to 0600), refuses
    a file that is not a regular file owned by this user, and recovers from a crash: a
    torn last line is truncated and an ``audit_recovered`` record appended. A complete last
    line that does not parse is corruption, not a crash, and raises AuditTrailError.

    ``clock`` returns the aware wall-clock time stamped on each record.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._path = Path(path)
        self._clock = clock if clock is not None else _utc_now
        self._broken: OSError | None = None
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        # A fresh machine has no state directory yet; it holds order intents, so 0700.
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self._path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(self._path, flags)
            created = False
        try:
            self._secure(fd)
            torn_bytes, last_seq = self._recover(fd)
            if created:
                _fsync_directory(self._path)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self._next_seq = last_seq + 1
        # Where the next record starts: a failed write is cut back to here.
        self._size = os.fstat(fd).st_size
        if torn_bytes:
            logger.warning(
                "audit trail %s: cut a torn last record (%d bytes) after seq %d",
                self._path, torn_bytes, last_seq,
            )
            self.append("audit_recovered", truncated_bytes=torn_bytes, after_seq=last_seq)

    def _secure(self, fd: int) -> None:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AuditTrailError(f"audit trail {self._path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise AuditTrailError(f"audit trail {self._path} belongs to another user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            logger.warning(
                "audit trail %s was readable by others (mode %o); set to 0600",
                self._path, stat.S_IMODE(info.st_mode),
            )
            os.fchmod(fd, 0o600)

    def _recover(self, fd: int) -> tuple[int, int]:
        """Cut a torn tail; return (bytes cut, seq of the last complete record or 0)."""
        size = os.fstat(fd).st_size
        end, line = _last_complete_line(fd, size)
        last_seq = 0
        if line is not None:
            try:
                last_seq = AuditRecord.from_json(line).seq
            except ValueError as exc:
                raise CorruptTrail(
                    f"audit trail {self._path}: the last complete record (ending at byte "
                    f"{end}) is unreadable; refusing to append to a corrupted trail"
                ) from exc
        if end < size:
            os.ftruncate(fd, end)
            os.fsync(fd)
        return size - end, last_seq

    @property
    def path(self) -> Path:
        return self._path

    @property
    def next_seq(self) -> int:
        """The seq the next record will get."""
        return self._next_seq

    def append(self, kind: str, /, **fields: object) -> AuditRecord:
        """Write one record and fsync it; return it as stored.

        When this returns the record is on disk. Raises :class:`UnstorableRecord` for
        fields that cannot be stored (reserved names, non-finite floats, unknown types)
        without writing anything. An OSError while writing or syncing marks the trail
        broken: the bytes of the failed record are cut off again (best effort), so that
        whoever retries it after reopening writes it once, not twice; later appends raise
        AuditTrailError until it is reopened, which repairs any torn tail.
        """
        if self._fd is None:
            raise AuditTrailError(f"audit trail {self._path} is closed")
        if self._broken is not None:
            raise AuditTrailError(
                f"audit trail {self._path} is broken by a failed write; reopen it to repair"
            ) from self._broken
        if not kind or not isinstance(kind, str):
            raise UnstorableRecord("audit record kind must be a non-empty string")
        clash = _RESERVED.intersection(fields)
        if clash:
            raise UnstorableRecord(f"audit field names {sorted(clash)} are reserved")
        record = {"seq": self._next_seq, "ts": _format_ts(self._clock()), "kind": kind}
        record.update(fields)
        try:
            line = json.dumps(
                record, default=_json_default, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise UnstorableRecord(f"audit record {kind!r}: {exc}") from exc
        data = line.encode("ascii") + b"\n"
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:
            self._broken = exc
            self._cut_back()
            raise
        self._next_seq += 1
        self._size += len(data)
        return AuditRecord.from_json(data)

    def _cut_back(self) -> None:
        # The caller is told the record failed, so it must not stay behind to be found
        # twice once the caller retries. If even this fails the trail over-reports (the
        # record may be there twice), which is the safe side: it never under-reports.
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            logger.warning("audit trail %s: could not cut back a failed record", self._path)

    def records(self) -> Iterator[AuditRecord]:
        """Read back every complete record, oldest first."""
        return read_audit_records(self._path)

    def close(self) -> None:
        """Close the file. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- what the log may show ------------------------------------------------------------

_MASK = "***"
# Substrings of a normalised key (lower case, no "_" or "-") whose values stay out of logs.
_SENSITIVE_KEY_PARTS = (
    "account", "acct", "price", "qty", "quantity", "filled", "remaining", "commission",
    "position", "size", "amount", "cash", "pnl", "cost", "notional", "balance",
)
# IB account ids (U1234567, DU1234567, F1234567, ...) wherever they appear as a value.
_ACCOUNT_ID = re.compile(r"D?[UFI]\d{5,9}")


def _is_sensitive_key(key: str) -> bool:
    normal = key.lower().replace("_", "").replace("-", "")
    return any(part in normal for part in _SENSITIVE_KEY_PARTS)


def _redact_value(value: object) -> object:
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    if isinstance(value, str) and _ACCOUNT_ID.fullmatch(value.strip()):
        return _MASK
    return value


def redact(fields: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``fields`` fit for a log line: accounts, quantities, prices and other
    money amounts masked, recursively; anything that looks like an account id masked too.
    The audit trail itself stores the unredacted fields."""
    return {
        key: _MASK if _is_sensitive_key(str(key)) else _redact_value(value)
        for key, value in fields.items()
    }


