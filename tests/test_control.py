"""The operator control endpoint: a private Unix socket speaking JSON lines.

The endpoint runs as the ``control`` actor inside a real supervision tree and drives that
tree through a small target (what the Runtime is to it). Unix sockets answer at once, so
these tests use the real clock with short safety limits; nothing waits for long.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import attrs
import pytest
import trio

from ibkr_connector.actors import control, control_wire
from ibkr_connector.actors.control import (
    MAX_LINE,
    ControlBusy,
    ControlError,
    ControlTimeout,
    ControlUnavailable,
    LineBuffer,
    NotAControlSocket,
    PeerCredentials,
    control_request,
    default_control_path,
    run_control,
    serve_control,
)
from ibkr_connector.supervisor import (
    ChildInfo,
    ChildSpec,
    ChildState,
    SupervisionEventKind,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)

LIMIT = 5.0  # safety net on every wait; a passing test takes milliseconds


# -- a target over a real supervision tree ---------------------------------------------------


class LinkState(enum.Enum):
    CONNECTED = "connected"


@attrs.frozen
class LimiterStats:
    rate: float
    queued: int


class TreeTarget:
    """What the Runtime is to the endpoint, over a real tree (bound once it runs)."""

    def __init__(self) -> None:
        self.supervisor: Supervisor | None = None
        self.fail_stats = False

    @property
    def _tree(self) -> Supervisor:
        assert self.supervisor is not None
        return self.supervisor

    def tree(self) -> ChildInfo:
        return self._tree.tree()

    async def status_report(self) -> Mapping[str, object]:
        return {"state": LinkState.CONNECTED, "server_version": 200, "accounts": ("DU1",),
                "reconnects": 2, "connected_since": None}

    async def stats(self) -> Mapping[str, object]:
        if self.fail_stats:
            raise RuntimeError("stats exploded")
        return {"limiter": LimiterStats(rate=12.5, queued=3), "latency": float("inf")}

    async def restart(self, actor: str) -> None:
        await self._tree.force_restart_child(actor)

    async def stop(self, actor: str) -> None:
        await self._tree.terminate_child(actor)

    async def start(self, actor: str) -> None:
        await self._tree.start_child(actor)


async def echo_worker(mailbox: object, *, task_status: trio.TaskStatus[None]
                      = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    async for envelope in mailbox:  # type: ignore[attr-defined]
        envelope.reply(envelope.message)


@attrs.frozen
class Endpoint:
    path: Path
    target: TreeTarget
    supervisor: Supervisor


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 108-byte limit of a Unix socket path.
    directory = Path(tempfile.mkdtemp(prefix="ibc-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def endpoint(sock_dir: Path) -> AsyncIterator[Endpoint]:
    path = sock_dir / "run" / "control.sock"
    target = TreeTarget()
    spec = SupervisorSpec("ibkr", children=(
        SupervisorSpec("core", children=(
            ChildSpec("bus", echo_worker),
            ChildSpec("control", functools.partial(run_control, path=path, target=target)),
        )),
        SupervisorSpec("session", children=(ChildSpec("watchdog", echo_worker),)),
    ))
    async with open_supervisor(spec) as supervisor:
        target.supervisor = supervisor
        yield Endpoint(path, target, supervisor)


class RawClient:
    """A hand-driven connection: send any bytes, read replies line by line."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = LineBuffer(10 * MAX_LINE)
        self.lines: list[bytes] = []

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def reply(self) -> dict[str, object]:
        with trio.fail_after(LIMIT):
            while not self.lines:
                data = await self.stream.receive_some()
                assert data, "the endpoint closed the connection instead of replying"
                self.lines.extend(self.buffer.feed(data))
        reply = json.loads(self.lines.pop(0))
        assert isinstance(reply, dict)
        return reply

    async def is_closed(self) -> bool:
        """EOF, or a reset: Linux resets a Unix socket closed with our bytes still unread."""
        with trio.fail_after(LIMIT):
            try:
                return await self.stream.receive_some() == b""
            except trio.BrokenResourceError:
                return True


async def connect(path: Path) -> RawClient:
    return RawClient(await trio.open_unix_socket(str(path)))


def node(tree: Mapping[str, object], name: str) -> Mapping[str, object]:
    found = control_wire._find(tree, name)
    assert found is not None, f"{name} not in the tree"
    return found


# -- where the socket lives and who may use it --------------------------------------------


def test_default_path_is_a_private_directory_under_xdg_runtime_dir(
        sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(sock_dir))
    old = os.umask(0o022)
    try:
        path = default_control_path()
    finally:
        os.umask(old)
    assert path == sock_dir / "ibkr-connector" / "control.sock"
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_default_path_falls_back_to_a_per_user_directory_without_xdg_runtime_dir(
        sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(control, "_FALLBACK_BASE", sock_dir)
    (sock_dir / f"ibkr-connector-{os.getuid()}").mkdir(mode=0o755)
    path = default_control_path()
    assert path == sock_dir / f"ibkr-connector-{os.getuid()}" / "control.sock"
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700  # tightened


def test_default_path_refuses_a_symlinked_directory(
        sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(sock_dir))
    (sock_dir / "elsewhere").mkdir()
    (sock_dir / "ibkr-connector").symlink_to(sock_dir / "elsewhere")
    with pytest.raises(ControlError, match="not a directory"):
        default_control_path()


def test_default_path_refuses_a_directory_owned_by_another_user(
        sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(sock_dir))
    (sock_dir / "ibkr-connector").mkdir()
    monkeypatch.setattr(os, "getuid", lambda: os.stat(sock_dir).st_uid + 1)
    with pytest.raises(ControlError, match="belongs to uid"):
        default_control_path()


async def test_socket_is_mode_0600_in_a_0700_directory_even_with_umask_0(
        sock_dir: Path) -> None:
    path = sock_dir / "fresh" / "control.sock"
    old = os.umask(0)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, path, TreeTarget())
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
            nursery.cancel_scope.cancel()
    finally:
        os.umask(old)


def test_peer_credentials_name_the_connecting_process() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        creds = control.peer_credentials(trio.socket.from_stdlib_socket(left))
    assert creds.uid == os.getuid()
    assert creds.pid == os.getpid()


async def test_a_peer_with_another_uid_is_refused_and_others_are_still_served(
        endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    uids = iter([os.getuid() + 1, os.getuid()])
    monkeypatch.setattr(control, "peer_credentials",
                        lambda sock: PeerCredentials(4242, next(uids), 0))
    intruder = await connect(endpoint.path)
    await intruder.send(b'{"cmd": "stop", "actor": "watchdog"}\n')
    reply = await intruder.reply()
    assert reply["ok"] is False
    assert f"uid {os.getuid() + 1}" in str(reply["error"])
    assert "permission denied" in str(reply["error"])
    assert await intruder.is_closed()
    assert _state(endpoint, "watchdog") is ChildState.RUNNING  # the stop never happened
    reply = await control_request(endpoint.path, "tree")
    assert reply["ok"] is True


async def test_a_peer_whose_credentials_cannot_be_read_is_refused(
        endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(sock: object) -> PeerCredentials:
        raise OSError("no SO_PEERCRED here")

    monkeypatch.setattr(control, "peer_credentials", unreadable)
    reply = await control_request(endpoint.path, "tree")
    assert reply == {"ok": False, "error": "permission denied: cannot verify the peer's "
                                           "credentials: no SO_PEERCRED here"}


# -- commands ----------------------------------------------------------------------------------


async def test_tree_reports_every_actor_with_state_restarts_uptime_and_mailbox(
        endpoint: Endpoint) -> None:
    reply = await control_request(endpoint.path, "tree")
    assert reply["ok"] is True
    tree = reply["result"]
    assert isinstance(tree, dict)
    assert tree["name"] == "ibkr" and tree["kind"] == "supervisor"
    assert [c["name"] for c in tree["children"]] == ["core", "session"]
    bus = node(tree, "bus")
    assert bus["kind"] == "worker" and bus["state"] == "running"
    assert bus["restarts"] == 0 and bus["last_error"] is None and bus["mailbox_depth"] == 0
    assert isinstance(bus["uptime"], float) and bus["uptime"] >= 0
    assert set(bus) == {"name", "kind", "state", "restarts", "last_error", "uptime",
                        "mailbox_depth", "children"}


async def test_status_and_stats_replies_are_plain_json(endpoint: Endpoint) -> None:
    status = await control_request(endpoint.path, "status")
    assert status == {"ok": True, "result": {
        "state": "connected", "server_version": 200, "accounts": ["DU1"], "reconnects": 2,
        "connected_since": None}}
    stats = await control_request(endpoint.path, "stats")
    assert stats == {"ok": True, "result": {"limiter": {"rate": 12.5, "queued": 3},
                                            "latency": "inf"}}


async def test_restart_restarts_the_actor_and_replies_with_its_new_state(
        endpoint: Endpoint) -> None:
    reply = await control_request(endpoint.path, "restart", "watchdog")
    assert reply["ok"] is True
    result = reply["result"]
    assert isinstance(result, dict)
    assert result["name"] == "watchdog" and result["state"] == "running"
    assert result["restarts"] == 1


async def test_stop_keeps_the_actor_stopped_until_start(endpoint: Endpoint) -> None:
    stopped = await control_request(endpoint.path, "stop", "watchdog")
    assert stopped["ok"] is True
    assert stopped["result"]["state"] == "stopped"  # type: ignore[index]
    assert _state(endpoint, "watchdog") is ChildState.STOPPED
    started = await control_request(endpoint.path, "start", "watchdog")
    assert started["ok"] is True
    assert started["result"]["state"] == "running"  # type: ignore[index]
    assert _state(endpoint, "watchdog") is ChildState.RUNNING


def _state(endpoint: Endpoint, name: str) -> object:
    def walk(info: ChildInfo) -> list[ChildInfo]:
        return [info, *(c for child in info.children for c in walk(child))]
    return next(i.state for i in walk(endpoint.target.tree()) if i.name == name)


async def test_stopping_the_control_actor_itself_is_refused(endpoint: Endpoint) -> None:
    for actor in ("control", "core"):
        reply = await control_request(endpoint.path, "stop", actor)
        assert reply["ok"] is False
        assert "locked out" in str(reply["error"])
    assert _state(endpoint, "control") is ChildState.RUNNING


async def test_restarting_the_control_actor_replies_first_then_serves_again(
        endpoint: Endpoint) -> None:
    events = endpoint.supervisor.subscribe()
    reply = await control_request(endpoint.path, "restart", "control")
    assert reply["ok"] is True
    assert reply["result"]["state"] == "restarting"  # type: ignore[index]
    with trio.fail_after(LIMIT):
        async for event in events:
            if event.kind is SupervisionEventKind.STARTED and event.child == "control":
                break
    again = await control_request(endpoint.path, "tree")
    assert node(again["result"], "control")["restarts"] == 1  # type: ignore[arg-type]


async def test_the_control_actor_fails_messages_sent_to_its_mailbox(
        endpoint: Endpoint) -> None:
    with pytest.raises(TypeError, match="has no handler for"):
        await endpoint.supervisor.address("control").call("hello", timeout=LIMIT)


# -- bad input: clear errors, and the endpoint keeps serving ------------------------------------


async def test_bad_requests_get_clear_errors_on_a_connection_that_stays_open(
        endpoint: Endpoint) -> None:
    client = await connect(endpoint.path)
    cases = [
        (b'{"cmd": "reboot"}\n', "unknown command 'reboot'; commands: tree, status, stats"),
        (b"{not json\n", "bad JSON:"),
        (b"[" * 50_000 + b"\n", "bad JSON"),
        (b'"tree"\n', "a request is a JSON object"),
        (b'{"cnd": "tree"}\n', "no 'cmd' string"),
        (b'{"command": "drop"}\n', "not a simulator's fault socket"),
        (b'{"cmd": "restart"}\n', "command 'restart' needs an 'actor' name"),
        (b'{"cmd": "tree", "actor": "bus"}\n', "command 'tree' takes no field 'actor'"),
        (b'{"cmd": "restart", "actor": "nosuch"}\n', "unknown actor 'nosuch'; actors: ibkr, "
                                                      "core, bus, control, session, watchdog"),
        (b'{"cmd": "restart", "actor": "ibkr"}\n', "root supervisor"),
        (b"\xff\xfe\n", "bad JSON"),
        (b'{"cmd": "stop", "actor": "\\ud800"}\n', "unknown actor '\\ud800'"),
    ]
    for line, error in cases:
        await client.send(line)
        reply = await client.reply()
        assert reply["ok"] is False, line
        assert error in str(reply["error"]), (line, reply)
    await client.send(b'{"cmd": "tree"}\n')
    assert (await client.reply())["ok"] is True


async def test_an_oversized_line_is_refused_and_closed_while_others_are_served(
        endpoint: Endpoint) -> None:
    bystander = await connect(endpoint.path)
    flooder = await connect(endpoint.path)
    await flooder.send(b'{"cmd": "tree"}\n' + b" " * (MAX_LINE + 1))
    assert (await flooder.reply())["ok"] is True  # the complete line before it is answered
    reply = await flooder.reply()
    assert reply == {"ok": False, "error": f"request line longer than {MAX_LINE} bytes; closing"}
    assert await flooder.is_closed()
    await bystander.send(b'{"cmd": "status"}\n')
    assert (await bystander.reply())["ok"] is True


async def test_a_failing_target_becomes_an_error_reply_not_a_crash(endpoint: Endpoint) -> None:
    endpoint.target.fail_stats = True
    reply = await control_request(endpoint.path, "stats")
    assert reply == {"ok": False,
                     "error": "internal error in 'stats': RuntimeError: stats exploded"}
    assert _state(endpoint, "control") is ChildState.RUNNING
    assert (await control_request(endpoint.path, "status"))["ok"] is True


async def test_a_last_line_without_newline_is_answered_at_end_of_input(
        endpoint: Endpoint) -> None:
    client = await connect(endpoint.path)
    await client.send(b'{"cmd": "tree"}')
    await client.stream.send_eof()
    assert (await client.reply())["ok"] is True
    assert await client.is_closed()


async def test_an_idle_connection_is_closed(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, path, TreeTarget(),
                                              idle_timeout=0.05))
        client = await connect(path)
        reply = await client.reply()
        assert reply == {"ok": False, "error": "idle for 0.05 s; closing"}
        assert await client.is_closed()
        nursery.cancel_scope.cancel()


# -- the socket file's life ------------------------------------------------------------------


async def test_a_stale_socket_file_is_replaced_and_removed_on_exit(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a killed runtime leaves
    target = TreeTarget()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, path, target)
        client = await connect(path)
        await client.send(b'{"cmd": "stats"}\n')
        assert (await client.reply())["ok"] is True
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_a_live_socket_is_not_stolen(endpoint: Endpoint) -> None:
    with pytest.raises(ControlError, match="another process is already serving"):
        await serve_control(endpoint.path, TreeTarget())
    assert (await control_request(endpoint.path, "tree"))["ok"] is True


async def test_a_file_that_is_not_a_socket_is_not_replaced(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    path.write_text("precious")
    with pytest.raises(ControlError, match="is not a socket"):
        await serve_control(path, TreeTarget())
    assert path.read_text() == "precious"


async def test_the_socket_file_goes_when_the_tree_stops(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    spec = SupervisorSpec("root", children=(
        ChildSpec("control", functools.partial(run_control, path=path, target=TreeTarget())),))
    async with open_supervisor(spec):
        assert path.exists()
    assert not path.exists()


# -- the client ----------------------------------------------------------------------------------


async def test_client_reports_unavailable_when_there_is_no_socket(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    with pytest.raises(ControlUnavailable, match=f"no control socket at {path}"):
        await control_request(path, "tree")


async def test_client_reports_unavailable_for_a_stale_socket(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    with pytest.raises(ControlUnavailable, match=f"nothing listens on {path}"):
        await control_request(path, "tree")


async def test_client_times_out_on_a_runtime_that_never_replies(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen(1)  # accepts into the backlog, never answers
        with pytest.raises(ControlTimeout, match="did not reply within 0.05 s"):
            await control_request(path, "tree", timeout=0.05)


async def test_client_reports_a_connection_closed_without_reply(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    listener = trio.SocketListener(control._bind(path))

    async def hang_up() -> None:
        stream = await listener.accept()
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hang_up)
        with pytest.raises(ControlUnavailable, match="closed the connection without a reply"):
            await control_request(path, "tree")
    await listener.aclose()


async def test_client_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="restart takes one actor name"):
        await control_request(Path("/nonexistent"), "restart")
    with pytest.raises(ValueError, match="tree takes no arguments"):
        await control_request(Path("/nonexistent"), "tree", "bus")


# -- operator edges: bursts, a busy runtime, the wrong socket ------------------------------------


async def test_a_burst_of_a_hundred_simultaneous_clients_is_answered_in_full(
        endpoint: Endpoint) -> None:
    replies: list[dict[str, object]] = []

    async def ask() -> None:
        replies.append(await control_request(endpoint.path, "stats", timeout=LIMIT))

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(ask)
    assert [reply["ok"] for reply in replies] == [True] * 100


async def test_a_client_beyond_the_connection_limit_is_told_the_runtime_is_busy(
        sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, path, TreeTarget(),
                                              max_connections=2))
        held = [await connect(path), await connect(path)]
        for client in held:  # answered, so both are being served
            await client.send(b'{"cmd": "stats"}\n')
            assert (await client.reply())["ok"] is True
        reply = await control_request(path, "stats", timeout=LIMIT)
        assert reply["ok"] is False
        assert str(reply["error"]).startswith("the runtime is busy: 2 control connections")
        await held[0].stream.aclose()
        with trio.fail_after(LIMIT):
            while not (await control_request(path, "stats", timeout=LIMIT))["ok"]:
                await trio.sleep(0.01)  # the server notices the close in a moment
        nursery.cancel_scope.cancel()


async def test_a_full_listen_queue_is_reported_as_busy(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
        stuck.bind(str(path))
        stuck.listen(0)  # room for one waiting client, and it never accepts
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as first:
            first.connect(str(path))
            with pytest.raises(ControlBusy, match="is busy: its connection queue stayed full"):
                await control_request(path, "tree", timeout=0.05)


@pytest.mark.parametrize("kind", ["a regular file", "a directory"])
async def test_a_path_that_is_not_a_socket_is_named_as_such(sock_dir: Path, kind: str) -> None:
    path = sock_dir / "control.sock"
    if kind == "a directory":
        path.mkdir()
    else:
        path.write_text("notes")
    with pytest.raises(NotAControlSocket, match=f"is not a socket \\({kind}\\)"):
        await control_request(path, "tree")


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
    b'{"ok": true, "port": 7497}\n',
    b"[1, 2]\n",
])
async def test_another_programs_socket_is_named_as_such(sock_dir: Path, answer: bytes) -> None:
    path = sock_dir / "other.sock"
    listener = trio.SocketListener(control._bind(path))

    async def speak_another_protocol() -> None:
        stream = await listener.accept()
        async with stream:
            await stream.receive_some()
            await stream.send_all(answer)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(speak_another_protocol)
        with pytest.raises(NotAControlSocket, match="does not speak the ibkr-connector control"):
            await control_request(path, "tree", timeout=LIMIT)
    await listener.aclose()


async def test_the_simulators_fault_socket_and_ours_point_at_each_other(
        endpoint: Endpoint, sock_dir: Path) -> None:
    from ibkr_connector.simulator import SimulatorConfig, open_simulator
    from ibkr_connector.simulator._control import Status, send_control_command
    from ibkr_connector.simulator._control import serve_control as serve_fault_socket

    fault_path = str(sock_dir / "sim-control.sock")
    async with open_simulator(SimulatorConfig()) as sim, trio.open_nursery() as nursery:
        await nursery.start(serve_fault_socket, sim, fault_path)
        reply = await control_request(Path(fault_path), "tree", timeout=LIMIT)
        assert reply["ok"] is False
        assert "a TWS simulator's fault socket" in str(reply["error"])
        answer = await trio.to_thread.run_sync(send_control_command, str(endpoint.path),
                                               Status())
        assert answer["ok"] is False
        assert "not a simulator's fault socket" in str(answer["error"])
        nursery.cancel_scope.cancel()
