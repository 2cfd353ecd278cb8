"""The fake deployment's sync WebSocket: one connection, from the HTTP upgrade to its close.

The handler thread that accepted the upgrade reads the client's frames and answers them; a change
of the deployment's data is pushed from the thread that made it (`push`), so when a change returns,
its Transitions are on the wire. websockets' sans-I/O ServerProtocol does the framing; this module
does the sockets, the heartbeat and the failure switches that act on an open connection.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from fakeconnvo.sync import PING, EndSession, ProtocolError, SyncSession, parse_client_message

logger = logging.getLogger("fakeconnvo.sync")
# For websockets' own protocol objects. Never at DEBUG, whatever the root logger says: websockets
# then logs each frame's first bytes, and an Authenticate frame carries a token.
frames_logger = logging.getLogger("fakeconnvo.sync.frames")
frames_logger.setLevel(logging.INFO)

HEARTBEAT_INTERVAL: Final = 15.0  # the real sync worker's: a Ping after 15 s with nothing sent
_CLOSE_WAIT: Final = 2.0  # after our close frame, how long the client gets to close TCP
# Not JSON: what a proxy or a broken deployment might put in a text frame.
GARBAGE_FRAME: Final = "<html><body><h1>502 Bad Gateway</h1></body></html>"
_numbers = itertools.count(1)


class Switches(Protocol):
    def take(self, kind: str) -> bool:
        """Whether a switch of `kind` is on, counting this as one of its uses."""


class SyncConnection:
    """One sync WebSocket after its handshake. Its lock serialises the session and the sends."""

    def __init__(
        self,
        *,
        sock: socket.socket,
        protocol: ServerProtocol,
        session: SyncSession,
        switches: Switches,
        abort: Callable[[], None],
        client: str | None,
        silent: bool,
        heartbeat: float = HEARTBEAT_INTERVAL,
    ) -> None:
        self.number = next(_numbers)
        self.client = client
        self.silent = silent  # accepted, but never sends a thing
        self.opened_at = time.time()
        self.closed_at: float | None = None
        self.close_reason: str | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.auth_errors = 0
        # Query answers (QueryUpdated/QueryFailed) sent, and of those the ones pushed because
        # the deployment's data changed; per subscription in the session's Subscription too.
        self.answers = 0
        self.pushed = 0
        self._sock = sock
        self._protocol = protocol
        self._session = session
        self._switches = switches
        self._abort = abort
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._last_sent = time.monotonic()
        self._fragments: list[bytes] = []

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def serve(self) -> None:
        """Read and answer frames until the connection ends (run by the handler thread)."""
        try:
            self._read_loop()
        finally:
            with self._lock:
                self._end(self.close_reason or "closed by the client")

    def push(self) -> None:
        """The deployment's data changed: send a Transition if an answer did."""
        with self._lock:
            if not self.is_open:
                return
            self._run(self._session.refresh, pushed=True)

    def drop(self) -> None:
        """End the connection at once, with a TCP reset, as a network failure would."""
        with self._lock:
            if self.is_open:
                self._drop("dropped by the fake")

    def describe(self) -> dict[str, Any]:
        with self._lock:
            session = self._session
            connect = session.connect
            subscriptions = [s.describe() for s in session.subscriptions.values()]
            return {
                "connection": self.number,
                "client": self.client,
                "open": self.is_open,
                "silent": self.silent,
                "openedAt": self.opened_at,
                "closedAt": self.closed_at,
                "closeReason": self.close_reason,
                "connectionCount": None if connect is None else connect.connection_count,
                "lastCloseReason": None if connect is None else connect.last_close_reason,
                "user": session.user,
                "version": dict(session.version),
                "messagesIn": self.messages_in,
                "messagesOut": self.messages_out,
                "authErrors": self.auth_errors,
                "subscriptions": subscriptions,
            }

    def counts(self) -> tuple[int, int]:
        """(answers sent, of which pushed) since the start or `forget_counts`."""
        with self._lock:
            return self.answers, self.pushed

    def forget_counts(self) -> None:
        with self._lock:
            self.answers = self.pushed = 0
            for subscription in self._session.subscriptions.values():
                subscription.answers = subscription.pushed = 0

    # -- internals (self._lock held unless said otherwise) ------------------------------------

    def _read_loop(self) -> None:  # lock not held
        sock = self._sock
        closing_since: float | None = None  # when the close handshake began
        while self.is_open:
            now = time.monotonic()
            if closing_since is not None:
                # Closing: wait for the client's close frame and its TCP close, not for ever.
                wait = _CLOSE_WAIT - (now - closing_since)
                if wait <= 0:
                    return
            else:
                wait = self._heartbeat - (now - self._last_sent)
                if wait <= 0:
                    with self._lock:
                        self._send_json(PING, heartbeat=True)
                        self._last_sent = time.monotonic()
                    continue
            sock.settimeout(wait)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            with self._lock:
                if not self.is_open:
                    return
                if data:
                    self._protocol.receive_data(data)
                else:
                    self._protocol.receive_eof()
                for frame in self._protocol.events_received():
                    self._receive(frame)
                # The protocol's replies: a pong, the close frame answering the client's, and
                # once the handshake is done the end of our side of the TCP connection.
                self._flush()
                if not data:
                    return
                if closing_since is None and self._protocol.state is not State.OPEN:
                    closing_since = time.monotonic()

    def _receive(self, frame: Frame) -> None:
        if frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return  # ping, pong and close are the protocol's business
        self._fragments.append(frame.data)
        if not frame.fin:
            return
        data, self._fragments = b"".join(self._fragments), []
        self.messages_in += 1
        try:
            message = parse_client_message(data.decode("utf-8", "replace"))
        except ProtocolError as error:
            self._finish({"type": "FatalError", "error": str(error)})
            return
        logger.debug("sync %s <- %s", self.number, message)
        self._run(lambda: self._session.handle(message), pushed=False)

    def _run(self, step: Callable[[], list[dict[str, Any]]], *, pushed: bool) -> None:
        try:
            messages = step()
        except EndSession as ending:
            self._finish(ending.message)
            return
        for message in messages:
            if self._send_json(message) and message["type"] == "Transition":
                self._count(message, pushed=pushed)

    def _count(self, transition: dict[str, Any], *, pushed: bool) -> None:
        for modification in transition["modifications"]:
            if modification["type"] == "QueryRemoved":
                continue
            self.answers += 1
            self.pushed += pushed
            subscription = self._session.subscriptions.get(modification["queryId"])
            if subscription is not None:
                subscription.answers += 1
                subscription.pushed += pushed

    def _finish(self, message: dict[str, Any]) -> None:
        """Send Convex's last word (AuthError or FatalError), then close as Convex does: a close
        frame without a code, the client being expected to see the message and act."""
        if self._send_json(message) and message["type"] == "AuthError":
            self.auth_errors += 1
        if self.is_open and self._protocol.state is State.OPEN:
            self.close_reason = f"{message['type']}: {message['error']}"
            self._protocol.send_close()
            self._flush()

    def _send_json(self, message: dict[str, Any], *, heartbeat: bool = False) -> bool:
        """Send `message` unless silent, closing or a switch says otherwise; whether it went."""
        if self.silent or not self.is_open or self._protocol.state is not State.OPEN:
            return False
        if not heartbeat:
            if self._switches.take("sync_drop"):
                self._drop("sync_drop")
                return False
            if self._switches.take("sync_garbage"):
                self._send_text(GARBAGE_FRAME)
                return False
        self._send_text(json.dumps(message, ensure_ascii=False, separators=(",", ":")))
        logger.debug("sync %s -> %s", self.number, message["type"])
        return True

    def _send_text(self, text: str) -> None:
        self._protocol.send_text(text.encode())
        self.messages_out += 1
        self._last_sent = time.monotonic()
        self._flush()

    def _flush(self) -> None:
        for chunk in self._protocol.data_to_send():
            try:
                if chunk:
                    self._sock.sendall(chunk)
                else:
                    self._sock.shutdown(socket.SHUT_WR)  # sans-I/O's "half-close now"
            except OSError:
                self._end("connection lost")
                return

    def _drop(self, reason: str) -> None:
        self._abort()
        # Wakes the handler thread's recv (it sees EOF) without sending anything.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self.closed_at is None:
            self.closed_at = time.time()
            self.close_reason = self.close_reason or reason
