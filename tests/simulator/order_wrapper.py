"""An ibapi wrapper that records the order, execution and account callbacks too, and
decoders (ibapi's and ib_async's) that check a frame is consumed to its last field."""

from __future__ import annotations

from typing import Any

from ibapi import comm
from ibapi.decoder import Decoder

from .ibclient import IbTestClient, RecordingWrapper

_RECORDED = (
    "openOrder", "orderStatus", "openOrderEnd", "completedOrder", "completedOrdersEnd",
    "execDetails", "execDetailsEnd", "commissionAndFeesReport", "position", "positionEnd",
    "updateAccountValue", "updatePortfolio", "updateAccountTime", "accountDownloadEnd",
    "accountSummary", "accountSummaryEnd", "accountUpdateMulti", "accountUpdateMultiEnd",
)


def _recorder(name: str) -> Any:
    def record(self: RecordingWrapper, *args: Any) -> None:
        self._put(name, *args)
    record.__name__ = name
    return record


OrderRecordingWrapper = type("OrderRecordingWrapper", (RecordingWrapper,),
                             {name: _recorder(name) for name in _RECORDED})


class OrderTestClient(IbTestClient):
    """``IbTestClient`` whose wrapper also records order and account callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self.wrapper = OrderRecordingWrapper()
        self.client.wrapper = self.wrapper
        self.client.decoder = None


def decode_exactly(data: bytes, server_version: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The callbacks one or more frames produce in ibapi, asserting that every field of
    each frame was read (ibapi itself ignores trailing fields of most messages)."""
    wrapper = OrderRecordingWrapper()
    decoder = Decoder(wrapper, server_version)
    while data:
        _, text, data = comm.read_msg(data)
        fields = comm.read_fields(text)
        msg_id = int(fields[0])
        info = decoder.msgId2handleInfo[msg_id]
        if info.wrapperMeth is not None:
            decoder.interpretWithSignature(fields[1:], info)
            continue
        rest = iter(fields[1:])
        info.processMeth(decoder, rest)
        left = list(rest)
        assert not left, f"message {msg_id}: {len(left)} fields left over: {left}"
    calls = []
    while not wrapper.events.empty():
        calls.append(wrapper.events.get_nowait())
    return calls
