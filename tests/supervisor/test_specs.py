"""Child and supervisor specs: defaults, OTP vocabulary, validation at the edge."""

from __future__ import annotations

import math

import pytest

from ibkr_connector.supervisor import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_MAX_SECONDS,
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorSpec,
)

from .helpers import Probe


def test_child_spec_defaults_are_permanent_with_a_five_second_shutdown() -> None:
    spec = ChildSpec("feed", Probe().echo("feed"))
    assert spec.restart is Restart.PERMANENT
    assert spec.shutdown_timeout == 5.0
    assert spec.mailbox_capacity == 1024


def test_supervisor_spec_defaults_suit_a_trading_service() -> None:
    spec = SupervisorSpec("root", ())
    assert spec.strategy is Strategy.ONE_FOR_ONE
    assert (spec.max_restarts, spec.max_seconds) == (DEFAULT_MAX_RESTARTS, DEFAULT_MAX_SECONDS)
    assert (spec.max_restarts, spec.max_seconds) == (5, 30.0)
    assert spec.backoff is None
    assert spec.shutdown_timeout == math.inf  # bounded by the children's own timeouts


def test_supervisor_spec_accepts_a_list_of_children_and_keeps_a_tuple() -> None:
    probe = Probe()
    spec = SupervisorSpec("root", [ChildSpec("a", probe.echo("a"))])
    assert isinstance(spec.children, tuple)


def test_names_lists_the_subtree_in_start_order() -> None:
    probe = Probe()
    spec = SupervisorSpec(
        "root",
        (
            ChildSpec("a", probe.echo("a")),
            SupervisorSpec("sub", (ChildSpec("b", probe.echo("b")),)),
            ChildSpec("c", probe.echo("c")),
        ),
    )
    assert spec.names() == ["root", "a", "sub", "b", "c"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: ChildSpec("", Probe().echo("x")),
        lambda: ChildSpec("x", Probe().echo("x"), shutdown_timeout=-1),
        lambda: ChildSpec("x", Probe().echo("x"), mailbox_capacity=0),
        lambda: ChildSpec("x", "not callable"),  # type: ignore[arg-type]
        lambda: SupervisorSpec("root", (), max_restarts=-1),
        lambda: SupervisorSpec("root", (), max_seconds=0),
        lambda: SupervisorSpec("root", ("not a spec",)),  # type: ignore[arg-type]
        lambda: Backoff(min_delay=0),
        lambda: Backoff(min_delay=2, max_delay=1),
        lambda: Backoff(random_factor=-0.1),
    ],
)
def test_invalid_specs_are_rejected_when_built(build: object) -> None:
    assert callable(build)
    with pytest.raises((ValueError, TypeError)):
        build()


def test_backoff_defaults_follow_akka_shape() -> None:
    backoff = Backoff()
    assert backoff.min_delay < backoff.max_delay
    assert 0 <= backoff.random_factor < 1
    assert backoff.reset_after > backoff.min_delay
