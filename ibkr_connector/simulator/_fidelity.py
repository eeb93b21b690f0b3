"""``ibkr-connector fidelity FILE``: where does the simulator answer unlike the recording?

The recording's client side (handshake, ``START_API``, every request, at its recorded
pace) is sent to the bundled simulator started in-process, and the simulator's answers are
compared with the recorded ones per message type by ``compare``, a pure function over
field tuples. What counts as a difference is the small table ``RULES``: ids, codes and
enums are stable and compared; prices, sizes and times are not. Streaming types (ticks)
are compared by which (request, tick type) keys occur, not by how many ticks came; errors
by the multiset of (request id, code). Types present on one side only, field counts, and
the order of the non-streaming messages are compared for every type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import attrs
import trio
from ibapi.message import IN

from ibkr_connector.simulator._config import SimulatorConfig
from ibkr_connector.simulator._recording import (
    AccountMasker,
    FrameSplitter,
    Recording,
    fields_of,
)
from ibkr_connector.simulator._replay import server_id_indices
from ibkr_connector.simulator._server import open_simulator

__all__ = ["RULES", "FidelityReport", "Rule", "TypeReport", "compare", "format_report",
           "run_fidelity"]

Message = tuple[str, ...]  # message id first, as on the wire
_MAX_VALUE_DIFFS = 3
_LAYOUT_VERSION = 200  # the version RULES' field indices are written for


@attrs.frozen
class Rule:
    """How one message type is compared. Indices count the fields after the message id.

    ``stable``: the fields whose values must match (None: all). ``stream``: a streaming
    type, compared by the set of these key fields. ``keyed``: compared as a multiset of
    these key fields (order- and pairing-free, for errors and notices).
    """

    stable: tuple[int, ...] | None = None
    stream: tuple[int, ...] | None = None
    keyed: tuple[int, ...] | None = None


#: The comparison rules per server message id (field indices at server version 200).
RULES: dict[int, Rule] = {
    1: Rule(stream=(1, 2)), 2: Rule(stream=(1, 2)), 21: Rule(stream=(0, 1)),
    45: Rule(stream=(1, 2)), 46: Rule(stream=(1, 2)), 99: Rule(stream=(0, 1)),
    4: Rule(keyed=(0, 1)),  # ERR_MSG: request id and code; not the text or the time
    3: Rule(stable=(0, 1, 6, 8)),  # ORDER_STATUS: order id, status, parent id, client id
    5: Rule(stable=(0, 1, 2, 3, 4, 5, 6, 8, 9, 12, 14, 17)),  # contract, action, type, tif
    9: Rule(stable=(0,)), 49: Rule(stable=(0,)), 109: Rule(stable=()), 8: Rule(stable=(0,)),
    10: Rule(stable=tuple(range(14))),  # CONTRACT_DATA: contract ids and min tick
    11: Rule(stable=(0, 1, 2, 3, 4, 17, 21)),  # EXECUTION_DATA: ids, contract, side
    59: Rule(stable=(0, 3)),  # COMMISSION_REPORT: version, currency
    61: Rule(stable=(0, 1, 2, 3, 4)), 6: Rule(stable=(0, 1, 3, 4)),
    7: Rule(stable=(0, 1, 2, 3)), 63: Rule(stable=(0, 1, 2, 3, 5)),
    73: Rule(stable=(0, 1, 2, 3, 4, 6)), 75: Rule(stable=(0, 1, 2, 3, 4)),
    101: Rule(stable=(0, 1, 2)),
    # End markers and the like: every field.
    15: Rule(), 52: Rule(), 53: Rule(), 54: Rule(), 55: Rule(), 57: Rule(), 58: Rule(),
    62: Rule(), 64: Rule(), 72: Rule(), 74: Rule(), 76: Rule(), 81: Rule(), 102: Rule(),
}
_UNKNOWN = Rule(stable=())  # a type we have no rule for: presence and field counts only


def type_name(msg_id: int) -> str:
    try:
        return str(IN(msg_id).name)
    except ValueError:
        return f"#{msg_id}"


@attrs.frozen
class TypeReport:
    msg_id: int
    recorded: int
    simulated: int
    differences: tuple[str, ...]


@attrs.frozen
class FidelityReport:
    types: tuple[TypeReport, ...]
    order: tuple[str, ...]
    #: What the per-type rows cannot show: a different server version, frames not compared.
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return not (self.order or self.notes or any(t.differences for t in self.types))


def _normalise(message: Message, server_version: int) -> tuple[str, ...]:
    """The fields after the id, without a version field older versions carry, so the
    rules' indices hold at every version."""
    msg_id, rest = int(message[0]), message[1:]
    now = server_id_indices(msg_id, server_version)
    then = server_id_indices(msg_id, _LAYOUT_VERSION)
    shift = now[0] - then[0] if now and then else 0
    return rest[shift:]


def _pick(fields: tuple[str, ...], indices: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(fields[i] if i < len(fields) else "" for i in indices)


def _sorted_text(items: Iterable[object]) -> str:
    return ", ".join(sorted(str(item) for item in items))


def _compare_type(rule: Rule, recorded: list[tuple[str, ...]],
                  simulated: list[tuple[str, ...]]) -> list[str]:
    if not simulated:
        return ["missing: the simulator never sent it"]
    if not recorded:
        return ["extra: the simulator sent it, the recording has none"]
    out: list[str] = []
    counts = ({len(f) for f in recorded}, {len(f) for f in simulated})
    if counts[0] != counts[1]:
        out.append(f"field count: recorded {sorted(counts[0])}, simulated {sorted(counts[1])}")
    if rule.stream is not None or rule.keyed is not None:
        indices = rule.stream if rule.stream is not None else rule.keyed
        assert indices is not None
        mine = Counter(_pick(f, indices) for f in recorded)
        theirs = Counter(_pick(f, indices) for f in simulated)
        if rule.stream is not None:
            mine, theirs = Counter(set(mine)), Counter(set(theirs))
        only_rec, only_sim = mine - theirs, theirs - mine
        if only_rec:
            out.append(f"keys only recorded: {_sorted_text(only_rec.elements())}")
        if only_sim:
            out.append(f"keys only simulated: {_sorted_text(only_sim.elements())}")
        return out
    if len(recorded) != len(simulated):
        out.append(f"count: recorded {len(recorded)}, simulated {len(simulated)}")
    diffs: list[str] = []
    for number, (mine_f, theirs_f) in enumerate(zip(recorded, simulated, strict=False), 1):
        indices = rule.stable if rule.stable is not None else tuple(
            range(max(len(mine_f), len(theirs_f))))
        for i in indices:
            a, b = _pick(mine_f, (i,))[0], _pick(theirs_f, (i,))[0]
            if a != b:
                diffs.append(f"#{number} field {i}: recorded {a!r}, simulated {b!r}")
    out += diffs[:_MAX_VALUE_DIFFS]
    if len(diffs) > _MAX_VALUE_DIFFS:
        out.append(f"... and {len(diffs) - _MAX_VALUE_DIFFS} more field differences")
    return out


def _order(recorded: Sequence[Message], simulated: Sequence[Message]) -> list[str]:
    """The first place where the non-streaming messages come in another order, among the
    types both sides sent equally often (other types are reported as count differences)."""
    def ids(messages: Sequence[Message]) -> list[int]:
        return [int(m[0]) for m in messages if RULES.get(int(m[0]), _UNKNOWN).stream is None]
    mine, theirs = ids(recorded), ids(simulated)
    same = {k for k in set(mine) | set(theirs) if mine.count(k) == theirs.count(k)}
    mine, theirs = [k for k in mine if k in same], [k for k in theirs if k in same]
    for position, (a, b) in enumerate(zip(mine, theirs, strict=False), 1):
        if a != b:
            return [f"message {position}: recorded {type_name(a)}, simulated {type_name(b)}"]
    return []


def compare(recorded: Sequence[Message], simulated: Sequence[Message],
            server_version: int = _LAYOUT_VERSION) -> FidelityReport:
    """Compare two sequences of server messages (handshake reply excluded) by RULES."""
    by_type: dict[int, tuple[list[tuple[str, ...]], list[tuple[str, ...]]]] = {}
    for side, messages in enumerate((recorded, simulated)):
        for message in messages:
            entry = by_type.setdefault(int(message[0]), ([], []))
            entry[side].append(_normalise(message, server_version))
    types = tuple(
        TypeReport(msg_id, len(mine), len(theirs),
                   tuple(_compare_type(RULES.get(msg_id, _UNKNOWN), mine, theirs)))
        for msg_id, (mine, theirs) in sorted(by_type.items())
    )
    return FidelityReport(types, tuple(_order(recorded, simulated)))


def format_report(report: FidelityReport) -> str:
    """A readable table: one row per message type, its differences below it."""
    lines = [f"{'id':>4}  {'message':<34}{'recorded':>9}{'simulated':>10}  result"]
    for row in report.types:
        result = "differs" if row.differences else "same"
        lines.append(f"{row.msg_id:>4}  {type_name(row.msg_id):<34}{row.recorded:>9}"
                     f"{row.simulated:>10}  {result}")
        lines += [f"{'':>6}- {text}" for text in row.differences]
    lines += [f"order: {text}" for text in report.order]
    lines += [f"note: {text}" for text in report.notes]
    lines.append("identical within the rules" if report.identical
                 else "differences found")
    return "\n".join(lines)


# -- running the simulator ------------------------------------------------------------------


async def _collect(stream: trio.SocketStream, into: list[Message]) -> None:
    splitter = FrameSplitter("s2c")
    try:
        while data := await stream.receive_some(65536):
            into += [fields for frame in splitter.feed(data)
                     if (fields := fields_of(frame.payload)) is not None]
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def run_fidelity(recording: Recording, *, conn: int | None = None, speed: float = 1.0,
                       settle: float = 0.3) -> FidelityReport:
    """Send one recorded connection's client side to a fresh in-process simulator, at the
    recorded pace divided by ``speed``, wait out the recording's tail plus ``settle``
    seconds, and compare what came back."""
    frames = recording.of_connection(conn if conn is not None else recording.connections()[0])
    sent = [f for f in frames if f.direction == "c2s"]
    replies = [f.fields for f in frames if f.direction == "s2c"]
    answers = [fields for fields in replies if fields is not None]
    if not sent or not answers:
        raise ValueError("the recorded connection has no handshake")
    version = int(answers[0][0])
    masker = AccountMasker() if recording.masked else None
    config = SimulatorConfig(port=0, server_version=version)
    if masker is None:
        accounts = [m[2] for m in answers if m[0] == "15" and len(m) > 2]
        if accounts:
            config = attrs.evolve(config, accounts=tuple(accounts[0].split(",")))
    got: list[Message] = []
    async with open_simulator(config) as sim:
        stream = await trio.open_tcp_stream(sim.host, sim.port)
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(_collect, stream, got)
            start, first = trio.current_time(), sent[0].mono
            for frame in sent:
                await trio.sleep_until(start + (frame.mono - first) / speed)
                await stream.send_all(frame.frame.wire())
            await trio.sleep((frames[-1].mono - sent[-1].mono) / speed + settle)
            nursery.cancel_scope.cancel()
    if masker is not None:
        got = [masker.fields(m) for m in got]
    notes = [f"server version: recorded {version}, simulated {got[0][0] if got else 'none'}"
             ] if not got or got[0][0] != str(version) else []
    if len(answers) < len(replies):  # protobuf (server version > 200) or damaged frames
        notes.append(f"{len(replies) - len(answers)} recorded frames are not classic text "
                     "messages and were not compared")
    report = compare(answers[1:], got[1:], version)
    return attrs.evolve(report, notes=tuple(notes))
