"""docs/testing.md's example runs as written: a user's strategy under generated faults."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from ibapi.order import Order

from ibkr_connector import Stock
from ibkr_connector.testing import Drop, SimStep, SimulationFailure, World, simulate

_DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", _DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/testing.md has one example"
    return blocks[0]


def test_the_documented_strategy_example_passes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)
    namespace: dict[str, object] = {}
    exec(compile(_example(), str(_DOC), "exec"), namespace)  # noqa: S102 - our own doc
    test = namespace["test_my_strategy_never_sends_an_order_twice"]
    assert callable(test)
    test()


def test_the_documented_check_catches_too_many_orders(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The example's check is not vacuous: a strategy placing more orders than it may is
    # caught by it.
    caplog.set_level(logging.CRITICAL)
    namespace: dict[str, object] = {}
    exec(compile(_example(), str(_DOC), "exec"), namespace)  # noqa: S102 - our own doc
    check = namespace["never_more_orders_than_attempts"]
    assert callable(check)

    async def greedy(world: World) -> None:
        for _ in range(4):
            order = Order()
            order.action, order.orderType, order.totalQuantity = "BUY", "MKT", 1
            await world.runtime.place_order(Stock("SPY"), order)

    with pytest.raises(SimulationFailure, match="4 orders reached TWS"):
        simulate((SimStep(60.0, Drop()),), seed=0, strategy=greedy, check=check)
