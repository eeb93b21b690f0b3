"""Contract and option-chain lookups of the market-data actor.

Every ticker and stream starts by resolving its contract to exactly one instrument, and
orders ask for contract details too. The answers are cached in the runtime's
`MarketDataMemory` (they outlive a restart of the actor); a question TWS refuses fails
with `UnknownContract`, one it leaves unanswered with `MarketDataTimeout`, never a wait
without end. Kept apart from the line bookkeeping: a lookup is a question and its
answers, and holds no line at TWS.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from .._errors import IBKRError
from ..contracts import ContractError, describe
from ..protocol import events as ev
from ..protocol.requests import ReqContractDetails, ReqSecDefOptParams, Request
from .connection_messages import ErrorOccurred
from .contract_cache import contract_info
from .market_data_messages import ChainDefinition, ContractInfo, UnknownContract
from .market_data_state import MarketDataMemory, MarketDataTimeout

__all__ = ["ContractLookups", "Submit"]

#: How the actor's requests leave: the runtime's path through the limiter.
Submit = Callable[[Request], Awaitable[None]]


@attrs.define(eq=False)
class _Collect:
    """Answers to one contract-details or chain request, gathered from the bus."""

    items: list[Any] = attrs.Factory(list)
    done: trio.Event = attrs.Factory(trio.Event)
    error: IBKRError | None = None


class ContractLookups:
    """Contract details, resolution to one instrument and option chains, cached."""

    def __init__(self, memory: MarketDataMemory, submit: Submit) -> None:
        self.memory = memory
        self.settings = memory.settings
        self._submit = submit
        self._pending: dict[int, _Collect] = {}

    async def details(self, contract: Any) -> tuple[ContractInfo, ...]:
        cached = self.memory.cache.details(contract)
        if cached is not None:
            return cached
        req_id = self.memory.next_req_id()
        items = await self._ask(req_id, ReqContractDetails(req_id, contract),
                                f"contract details of {describe(contract)}")
        infos = tuple(contract_info(d) for d in items)
        if not infos:
            raise UnknownContract(f"TWS knows no instrument matching {describe(contract)}")
        self.memory.cache.store_details(contract, infos)
        return infos

    async def resolve(self, contract: Any) -> ContractInfo:
        """Exactly one instrument, or a typed error before any market-data request."""
        _refuse_expired(contract)
        infos = await self.details(contract)
        if len(infos) != 1:
            raise UnknownContract(
                f"{describe(contract)} is ambiguous: {len(infos)} instruments match; "
                "add the exchange, trading class or conId")
        return infos[0]

    async def chain(self, underlying: ContractInfo) -> tuple[ChainDefinition, ...]:
        cached = self.memory.cache.chain(underlying.con_id)
        if cached is not None:
            return cached
        req_id = self.memory.next_req_id()
        items = await self._ask(req_id, ReqSecDefOptParams(
            req_id, underlying.symbol, underlying.sec_type, underlying.con_id),
            f"option chain of {underlying.symbol}")
        chain = tuple(ChainDefinition(
            underlying_con_id=int(p.underlying_con_id), exchange=p.exchange,
            trading_class=p.trading_class, multiplier=p.multiplier,
            expirations=tuple(sorted(p.expirations)), strikes=tuple(sorted(p.strikes)))
            for p in items)
        self.memory.cache.store_chain(underlying.con_id, chain)
        return chain

    async def _ask(self, req_id: int, request: Request, what: str) -> list[Any]:
        collect = self._pending[req_id] = _Collect()
        try:
            await self._submit(request)
            with trio.move_on_after(self.settings.request_timeout):
                await collect.done.wait()
        finally:
            del self._pending[req_id]
        if collect.error is not None:
            raise collect.error
        if not collect.done.is_set():
            raise MarketDataTimeout(
                f"TWS did not answer the request for {what} within "
                f"{self.settings.request_timeout:g} s")
        return collect.items

    def on_answer(self, event: object) -> None:
        """An answer from the bus: one more item of a pending lookup, or its end."""
        if isinstance(event, ev.ContractDetails | ev.SecDefOptParams):
            collect = self._pending.get(event.req_id)
            if collect is not None:
                collect.items.append(event.details if isinstance(event, ev.ContractDetails)
                                     else event)
        elif isinstance(event, ev.ContractDetailsEnd | ev.SecDefOptParamsEnd):
            collect = self._pending.get(event.req_id)
            if collect is not None:
                collect.done.set()

    def on_refusal(self, error: ErrorOccurred) -> bool:
        """Fail the pending lookup the error refuses; False if it refuses none."""
        collect = self._pending.get(error.req_id)
        if collect is None or not error.info.is_error:
            return False
        collect.error = UnknownContract(
            f"TWS refused the request ({error.code}: {error.info.meaning})")
        collect.done.set()
        return True


def _refuse_expired(contract: Any) -> None:
    expiry = getattr(contract, "lastTradeDateOrContractMonth", "")
    if contract.secType in ("OPT", "FOP") and len(expiry) == 8 and expiry.isdigit():
        if expiry < datetime.date.today().strftime("%Y%m%d"):
            raise ContractError(f"{describe(contract)} expired on {expiry}")
