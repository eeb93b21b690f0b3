"""One client's messages leave the simulated TWS in the order it produced them, as TWS
keeps them per client: a fill the desk's fill check makes while a placeOrder's own
answer is still being written never overtakes that answer."""

from __future__ import annotations

from decimal import Decimal

from ibapi.order_cancel import OrderCancel

from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.simulator._order_desk import OrderDesk
from ibkr_connector.simulator._orders import OrderEngine

from .order_wrapper import OrderTestClient
from .test_orders_engine import PinnedMarket
from .test_orders_socket import SPY, clients, connect, contract_of, is_, order  # noqa: F401
from .test_requests import encode

START = 1_750_000_000.0


async def test_a_partial_fill_never_overtakes_the_answer_to_its_place_order(
        clients: list[OrderTestClient]) -> None:  # noqa: F811
    config = SimulatorConfig(start_time=START, partial_fill_quantity=2)
    async with open_simulator(config) as sim:
        client, oid = await connect(sim, clients)
        stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
        for n in range(5):
            await client.call(client.client.placeOrder, oid + n, stock, order("BUY", 6))
            await client.wait_for("orderStatus", is_(oid + n, "Filled"))
            statuses = [(args[1], args[2]) for name, args in client.drain()
                        if name == "orderStatus" and args[0] == oid + n]
            client.seen.clear()
            filled = [quantity for _, quantity in statuses]
            assert filled == sorted(filled), statuses
            assert statuses[0] == ("PreSubmitted", Decimal(0)), statuses


def test_an_answer_waits_behind_the_notices_its_client_has_not_been_sent() -> None:
    market = PinnedMarket()
    desk = OrderDesk(OrderEngine(market, ["DU1"]), lambda now: START + now)
    market.pin(SPY, 500.00, 500.02)
    spy = contract_of(market.instrument(SPY))  # type: ignore[arg-type]
    _, place = encode(200, lambda c: c.placeOrder(5, spy, order("BUY", 1, "LMT", 499.0)))
    _, global_cancel = encode(200, lambda c: c.reqGlobalCancel(OrderCancel()))
    _, open_orders = encode(200, lambda c: c.reqOpenOrders())
    assert desk.handle(3, place, 1, 200, now=0.0).frames != ()
    # Another client cancels everything: client 1's Cancelled waits in the outbox ...
    desk.handle(58, global_cancel, 2, 200, now=0.1)
    # ... so client 1's next answer (no open order left) must not overtake it.
    assert desk.handle(5, open_orders, 1, 200, now=0.1).frames == ()
    delivered = [type(n.message).__name__ for n in desk.due(0.1) if n.client_id == 1]
    assert delivered[-1] == "OpenOrderEndMsg"
    assert "OrderStatusMsg" in delivered[:-1]
