"""The event bus's vocabulary: the error a cut-off subscriber sees, the counters it keeps,
and the call its actor shell answers.

Kept apart from the bus so that the actor shell (``bus_shell``) can speak these words
without importing the bus machinery; ``bus`` re-exports all of them. Every value is frozen.
"""

from __future__ import annotations

import attrs

from .._errors import IBKRError

__all__ = ["BusStats", "EventBusStats", "SubscriberOverflow"]


class SubscriberOverflow(IBKRError):
    """The subscriber fell more than its capacity of reliable events behind and was cut off.

    The events it had not yet received are gone; it must resubscribe and resync.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"subscriber fell more than {capacity} reliable events behind and was "
            "disconnected; its pending events were discarded, resubscribe and resync"
        )
        self.capacity = capacity


@attrs.frozen
class EventBusStats:
    """Counters of an :class:`~ibkr_connector.actors.bus.EventBus` since it was created."""

    published: int
    """Events handed to :meth:`EventBus.publish`."""
    delivered: int
    """Events taken by subscribers (one event to three subscribers counts three)."""
    conflated: int
    """Pending market-data events replaced by a newer one of the same key."""
    overflow_disconnects: int
    """Subscribers cut off with :class:`SubscriberOverflow`."""
    subscribers: int
    """Subscriptions currently attached."""


@attrs.frozen
class BusStats:
    """Call: reply is an :class:`EventBusStats` (the runtime's ``stats`` asks this way)."""
