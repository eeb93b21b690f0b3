"""Market-data callbacks of the unmodified ibapi client, recorded for tests.

``RecordingWrapper`` records the session-level callbacks; this subclass adds the
market-data ones (contract details, chains, option computations, generic ticks, market
data type, tick-by-tick) so tests can read what the simulator's frames decode to.
"""

from __future__ import annotations

from typing import Any

from ibapi.client import EClient

from .decoding import Call, decode
from .ibclient import IbTestClient, RecordingWrapper


class MarketWrapper(RecordingWrapper):
    def contractDetails(self, reqId: int, contractDetails: Any) -> None:
        self._put("contractDetails", reqId, contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:
        self._put("contractDetailsEnd", reqId)

    def securityDefinitionOptionParameter(self, reqId: int, exchange: str,
                                          underlyingConId: int, tradingClass: str,
                                          multiplier: str, expirations: Any,
                                          strikes: Any) -> None:
        self._put("secDefOptParams", reqId, exchange, underlyingConId, tradingClass,
                  multiplier, expirations, strikes)

    def securityDefinitionOptionParameterEnd(self, reqId: int) -> None:
        self._put("secDefOptParamsEnd", reqId)

    def tickOptionComputation(self, reqId: int, tickType: int, tickAttrib: int,
                              impliedVol: Any, delta: Any, optPrice: Any, pvDividend: Any,
                              gamma: Any, vega: Any, theta: Any, undPrice: Any) -> None:
        self._put("tickOptionComputation", reqId, tickType, impliedVol, delta, optPrice,
                  gamma, vega, theta, undPrice)

    def tickGeneric(self, reqId: int, tickType: int, value: float) -> None:
        self._put("tickGeneric", reqId, tickType, value)

    def marketDataType(self, reqId: int, marketDataType: int) -> None:
        self._put("marketDataType", reqId, marketDataType)

    def tickByTickAllLast(self, reqId: int, tickType: int, time: int, price: float,
                          size: Any, tickAttribLast: Any, exchange: str,
                          specialConditions: str) -> None:
        self._put("tickByTickAllLast", reqId, tickType, price, size)

    def tickByTickBidAsk(self, reqId: int, time: int, bidPrice: float, askPrice: float,
                         bidSize: Any, askSize: Any, tickAttribBidAsk: Any) -> None:
        self._put("tickByTickBidAsk", reqId, bidPrice, askPrice)

    def tickByTickMidPoint(self, reqId: int, time: int, midPoint: float) -> None:
        self._put("tickByTickMidPoint", reqId, midPoint)


def market_client() -> IbTestClient:
    """An ``IbTestClient`` whose wrapper records market-data callbacks too."""
    client = IbTestClient()
    client.wrapper = MarketWrapper()
    client.client = EClient(client.wrapper)
    return client


def decode_market(data: bytes, server_version: int) -> list[Call]:
    """Like ``decoding.decode``, with the market-data callbacks recorded."""
    return decode(data, server_version, MarketWrapper())
