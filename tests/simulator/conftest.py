"""Fixtures for simulator tests: ibapi clients that are always shut down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from .ibclient import IbTestClient


@pytest.fixture
async def ib_client() -> AsyncIterator[Callable[[], IbTestClient]]:
    """A factory of EClient drivers; every one made is closed at teardown, pass or fail."""
    made: list[IbTestClient] = []

    def make() -> IbTestClient:
        client = IbTestClient()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
