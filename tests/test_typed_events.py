"""A strategy's event stream is typed by what it asked for: ``runtime.events([ConnectionLost])``
is a ``Subscription[ConnectionLost]`` to mypy, so ``event.reason`` needs no cast or ignore."""

from __future__ import annotations

import textwrap
from pathlib import Path

import mypy.api

_STRATEGY = textwrap.dedent("""
    from ibkr_connector.actors.connection import ConnectionLost, ConnectionRecovered
    from ibkr_connector.runtime import Runtime


    async def strategy(runtime: Runtime) -> None:
        listed = runtime.events([ConnectionLost])
        reveal_type(listed)
        single = runtime.events(ConnectionLost)
        reveal_type(single)
        everything = runtime.events()
        reveal_type(everything)
        mixed = runtime.events((ConnectionLost, ConnectionRecovered))
        async for event in listed:
            reveal_type(event)
            print(event.reason)
        async for any_event in mixed:
            if isinstance(any_event, ConnectionRecovered):
                print(any_event.reconnects)
""")


def test_a_subscription_is_typed_by_the_kinds_asked_for(tmp_path: Path) -> None:
    source = tmp_path / "strategy.py"
    source.write_text(_STRATEGY)
    report, errors, status = mypy.api.run(
        ["--strict", "--cache-dir", str(tmp_path / "cache"), str(source)])
    revealed = [line.split("Revealed type is ")[1] for line in report.splitlines()
                if "Revealed type is" in line]
    assert revealed == [
        '"ibkr_connector.actors.bus.Subscription[ibkr_connector.actors.connection_messages.'
        'ConnectionLost]"',
        '"ibkr_connector.actors.bus.Subscription[ibkr_connector.actors.connection_messages.'
        'ConnectionLost]"',
        '"ibkr_connector.actors.bus.Subscription[object]"',
        '"ibkr_connector.actors.connection_messages.ConnectionLost"',
    ], report + errors
    assert "error" not in report, report  # reveal_type notes only: no ignores needed
