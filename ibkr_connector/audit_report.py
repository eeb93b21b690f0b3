"""``ibkr-connector audit``: the audit trail read back for the operator who owns it.

The trail (``actors/audit_trail``) is JSON lines written for durability, not for eyes.
This module selects records (since a time, of some kinds, of one order) and prints each as
one line: seq, time, kind, order id, then what the record says (status, outcome, side,
quantity, price...). It reads through ``read_audit_records``, which never opens the file
for writing, so it is safe beside a running service; a torn last line (a write in
progress, or a crash the next start will repair) is skipped.

This is the one place that prints quantities, prices and accounts: the operator reads
their own private trail on their own terminal. Nothing here logs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ._errors import IBKRError
from .actors.audit_trail import AuditRecord, read_audit_records

__all__ = [
    "AuditReportError",
    "add_audit_command",
    "format_record",
    "parse_since",
    "record_json",
    "select_records",
]

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([smhdw]))")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class AuditReportError(IBKRError, ValueError):
    """The trail cannot be read as asked: no file, no permission, a bad ``--since``."""


def parse_since(text: str, now: datetime.datetime) -> datetime.datetime:
    """The moment ``text`` names: a duration back from ``now`` (``90s``, ``30m``, ``1h30m``,
    ``2d``, ``1w``) or an ISO 8601 date or time. A time without a zone is UTC, as the
    trail's own times are. Raises ``AuditReportError`` for anything else."""
    text = text.strip()
    if text and _DURATION.sub("", text) == "":
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text))
        return now - datetime.timedelta(seconds=seconds)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise AuditReportError(f"--since: not an ISO time or a duration like 1h or 30m: "
                               f"{text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def select_records(records: Iterable[AuditRecord], *,
                   since: datetime.datetime | None = None,
                   kinds: Iterable[str] = (),
                   order_id: int | None = None) -> Iterator[AuditRecord]:
    """The records at or after ``since``, of one of ``kinds`` (any if empty), about
    ``order_id`` (any if None), in trail order."""
    wanted = frozenset(kinds)
    for record in records:
        if since is not None and record.ts < since:
            continue
        if wanted and record.kind not in wanted:
            continue
        if order_id is not None and record.fields.get("order_id") != order_id:
            continue
        yield record


def _time(moment: datetime.datetime) -> str:
    text = moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def record_json(record: AuditRecord) -> str:
    """The record as one JSON object, keys as stored (``seq``, ``ts``, ``kind`` first)."""
    ts = record.ts.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return json.dumps({"seq": record.seq, "ts": ts.replace("+00:00", "Z"), "kind": record.kind,
                       **record.fields}, separators=(",", ":"))


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _pairs(fields: Mapping[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """``key=value`` for the scalar fields left, in stored order; empty ones omitted."""
    left = (k for k in fields if k not in frozenset(skip) and k != "order_id")
    return [f"{k}={_value(fields[k])}" for k in left
            if fields[k] not in (None, "", []) and not isinstance(fields[k], dict | list)]


def _contract(contract: Mapping[str, Any]) -> str:
    parts = [str(contract.get(k)) for k in ("symbol", "sec_type", "expiry", "strike", "right")
             if contract.get(k) not in (None, "", "0", 0)]
    legs = contract.get("legs") or []
    for leg in legs:
        parts.append(f"{leg.get('action')} {leg.get('ratio')}x{leg.get('con_id')}")
    return " ".join(parts)


def _intent(fields: Mapping[str, Any]) -> list[str]:
    words = [str(fields.get("action", "")), str(fields.get("quantity", "")),
             str(fields.get("order_type", ""))]
    if fields.get("limit_price") is not None:
        words.append(f"@ {fields['limit_price']}")
    if fields.get("tif"):
        words.append(str(fields["tif"]))
    contract = fields.get("contract")
    if isinstance(contract, Mapping):
        words.append(_contract(contract))
    words += [flag for flag in ("modify", "what_if") if fields.get(flag)]
    shown = ("action", "quantity", "order_type", "limit_price", "aux_price", "tif", "contract",
             "modify", "what_if", "transmit", "parent_id")
    return [" ".join(w for w in words if w), *_pairs(fields, shown)]


def _execution(fields: Mapping[str, Any]) -> list[str]:
    words = f"{fields.get('side', '')} {fields.get('shares', '')} @ {fields.get('price', '')}"
    return [words, *_pairs(fields, ("side", "shares", "price"))]


_DETAILS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "order_intent": _intent,
    "execution": _execution,
}


def format_record(record: AuditRecord) -> str:
    """One readable line: seq, time (UTC), kind, order id, then what the record says."""
    order_id = record.fields.get("order_id")
    details = _DETAILS.get(record.kind, _pairs)(record.fields)
    order = f"order {order_id}" if order_id is not None else "-"
    return "  ".join([f"{record.seq:>6}", _time(record.ts), f"{record.kind:<16}",
                      f"{order:<12}", *details]).rstrip()


# -- the command ------------------------------------------------------------------------------


def _default_path(args: argparse.Namespace) -> Path:
    from .config import load_config
    from .runtime import default_audit_path

    return load_config(file=args.config).audit_path or default_audit_path()


def run_audit_command(args: argparse.Namespace) -> int:
    """Print the selected records of the trail; 0 even when none match."""
    path = Path(args.path) if args.path else _default_path(args)
    now = datetime.datetime.now(datetime.UTC)
    since = parse_since(args.since, now) if args.since else None
    show = record_json if args.json else format_record
    try:
        records = read_audit_records(path)
        for record in select_records(records, since=since, kinds=args.kind or (),
                                     order_id=args.order):
            print(show(record))
    except FileNotFoundError:
        raise AuditReportError(f"no audit trail at {path}") from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):  # `audit | head`: the reader has had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        raise AuditReportError(f"cannot read the audit trail {path}: "
                               f"{exc.strerror or exc}") from None
    return 0


def add_audit_command(subparsers: Any) -> None:
    """Register ``audit`` on the top-level parser's subparsers."""
    audit = subparsers.add_parser(
        "audit", help="print the audit trail (orders, statuses, fills, outcomes)",
        description="Print the audit trail, one line per record: seq, time (UTC), kind, "
        "order id, then status, outcome, side, quantity, price... The trail is only read, "
        "never opened for writing, so this is safe while the service runs; a torn last "
        "line is skipped. Unlike the logs, this output DOES show quantities, prices and "
        "accounts: it is your own private trail, so keep the output private too.")
    audit.add_argument("--since", metavar="WHEN",
                       help="only records from WHEN on: an ISO time (UTC unless it says) "
                       "or a duration back from now, e.g. 30m, 1h, 1h30m, 2d")
    audit.add_argument("--kind", action="append", metavar="KIND",
                       help="only records of this kind, e.g. order_intent, order_status, "
                       "execution, order_outcome, order_reconciled (repeatable)")
    audit.add_argument("--order", type=int, metavar="ID", help="only records of this order id")
    audit.add_argument("--json", action="store_true",
                       help="print each record as its full JSON object instead")
    audit.add_argument("--path", metavar="FILE",
                       help="the trail to read (default: IBKR_AUDIT_PATH or audit_path in the "
                       "config, else the per-user state dir, as the runtime uses)")
    audit.add_argument("--config", help="TOML config file (default: $IBKR_CONFIG)")
    audit.set_defaults(func=run_audit_command)
