"""A protocol-faithful fake TWS for tests, benches and demos.

The unmodified ``ibapi`` client connects to it over loopback: it answers the handshake,
``startApi`` (next valid id, managed accounts, farm notices), current time and ids, keeps
market-data subscriptions, enforces TWS's 50 messages/s rule (error 100) and one
connection per client id (326), and records every message it receives. Faults are
injected through ``TwsSimulator`` (drop, refuse connections for a while, send errors,
delay replies, malformed frames, tick floods) or, from a shell, through
``ibkr-connector fault`` against a running ``ibkr-connector sim``.

Layers, h11-style: ``_codec`` (sans-IO framing and handshake) and ``_messages`` (what the
server writes); ``_session`` (per-client behaviour, sans-IO); ``_connection`` and
``_server`` (Trio I/O); ``_control`` (the fault control socket); ``cli`` (subcommands).
"""

from ibkr_connector.simulator._codec import (
    ClientMessage,
    ClientProtocolError,
    ConnectionClosed,
    Handshake,
    ServerCodec,
    StartApi,
)
from ibkr_connector.simulator._config import (
    DEFAULT_SERVER_VERSION,
    MAX_SERVER_VERSION,
    MIN_SERVER_VERSION,
    SimulatorConfig,
)
from ibkr_connector.simulator._control import (
    ControlError,
    default_control_path,
    send_control_command,
    serve_control,
)
from ibkr_connector.simulator._faults import MALFORMED_KINDS
from ibkr_connector.simulator._server import TwsSimulator, open_simulator
from ibkr_connector.simulator._session import ReceivedMessage

__all__ = [
    "DEFAULT_SERVER_VERSION",
    "MALFORMED_KINDS",
    "MAX_SERVER_VERSION",
    "MIN_SERVER_VERSION",
    "ClientMessage",
    "ClientProtocolError",
    "ConnectionClosed",
    "ControlError",
    "Handshake",
    "ReceivedMessage",
    "ServerCodec",
    "SimulatorConfig",
    "StartApi",
    "TwsSimulator",
    "default_control_path",
    "open_simulator",
    "send_control_command",
    "serve_control",
]
