"""One public surface: `import ibkr_connector` has what an embedding program needs, and
every error the package raises on purpose derives from `IBKRError`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import ibkr_connector
from ibkr_connector import IBKRError

# Exceptions that never reach a caller: internal control flow, documented where defined.
_INTERNAL = {
    "ibkr_connector._settings.Invalid",  # turned into ConfigError naming the setting
    "ibkr_connector.protocol._reader.FrameTooLong",  # ends the read loop, never escapes
    "ibkr_connector.demo._BadTick",  # the demo's toy actor crashes on purpose
    "ibkr_connector._simulation.InjectedCrash",  # a simulated bug: crashes its actor
}


def _package_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(ibkr_connector.__path__, "ibkr_connector."):
        # The supervision layer is IB-free with its own root, SupervisorError; the
        # runtime re-raises those as IBKRError twins (tested below). The simulator is
        # the fake TWS, not the runtime's API.
        if ".supervisor" in info.name or ".simulator" in info.name:
            continue
        names.append(info.name)
    return names


def _exceptions() -> list[type[BaseException]]:
    found = {}
    for name in _package_modules():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith(
                    "ibkr_connector") and ".supervisor" not in value.__module__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [cls for key, cls in sorted(found.items()) if key not in _INTERNAL]


@pytest.mark.parametrize("error", _exceptions(), ids=lambda e: e.__qualname__)
def test_every_error_derives_from_ibkr_error(error: type[BaseException]) -> None:
    assert issubclass(error, IBKRError)


def test_every_exported_error_is_importable_from_the_package() -> None:
    exported = {getattr(ibkr_connector, name) for name in ibkr_connector.__all__}
    public_errors = [e for e in _exceptions() if not e.__name__.startswith("_")
                     and e.__module__.split(".")[1] in ("actors", "protocol", "contracts",
                                                         "config", "_settings", "runtime",
                                                         "ticker", "trade", "option_chain",
                                                         "spread_greeks", "black_scholes")]
    missing = [e.__qualname__ for e in public_errors if e not in exported
               and "control" not in e.__module__ and "audit_trail" not in e.__module__]
    assert not missing, f"not exported from ibkr_connector: {missing}"


def test_supervision_errors_are_caught_as_ibkr_errors() -> None:
    from ibkr_connector import supervisor
    from ibkr_connector._errors import translate_supervisor_errors

    with pytest.raises(IBKRError) as caught:
        with translate_supervisor_errors():
            raise supervisor.CallTimeout("limiter", 2.0)
    assert isinstance(caught.value, supervisor.CallTimeout)  # still the original kind
    assert isinstance(caught.value, ibkr_connector.CallTimeout)
    assert caught.value.name == "limiter" and caught.value.timeout == 2.0
    assert str(caught.value) == "call to actor 'limiter' got no reply within 2.0 s"


def test_everything_in_all_exists() -> None:
    assert [n for n in ibkr_connector.__all__ if not hasattr(ibkr_connector, n)] == []
    assert len(set(ibkr_connector.__all__)) == len(ibkr_connector.__all__)
