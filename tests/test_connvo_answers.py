"""Connvo's answer is read once and cleaned once (meetings/connvo.py), however it is shaped: the
shapes the fake Connvo cannot play (a body nested past any parser, text no encoder can write,
an answer trickled a byte at a time) come from a tiny Connvo stand-in on loopback, over real
HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from audit.models import Action, AuditEntry
from meetings import connvo
from meetings.deployments import Deployment

pytestmark = pytest.mark.django_db

MEETING_ID = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
MEETING = {
    "_id": MEETING_ID,
    "_creationTime": 1732530123456.5,
    "organizerId": "u1",
    "title": "Standup",
    "state": "active",
    "activeWebRTCSessions": 2,
    "createdAt": 1732530123456,
    "updatedAt": 1732530123456,
    "userRole": "host",
    "userPresence": "joined",
}


def found(**as_sent: str) -> str:
    """getMeeting's success answer: the meeting, each of `as_sent` (a field's JSON text, written
    as Connvo sent it) added or put in place of the meeting's."""
    fields = {name: json.dumps(value) for name, value in MEETING.items()} | as_sent
    value = ",".join(f"{json.dumps(name)}:{text}" for name, text in fields.items())
    return '{"status":"success","value":{' + value + "}}"


class OddConnvo(ThreadingHTTPServer):
    """Answers every request with `status` and `body` (bytes, sent as they are), the body one
    byte every `drip` seconds when `drip` is set. Counts the connections it was opened."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.body = b'{"status":"success","value":null}'
        self.drip = 0.0
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, body: str | bytes, *, status: int = 200) -> None:
        # surrogatepass: a str may hold a lone surrogate as Connvo's JSON can ("\ud800").
        self.body = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive, as Connvo's are
    server: OddConnvo

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = self.server.body
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self.server.drip:
            self.wfile.write(body)
            return
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            time.sleep(self.server.drip)


@pytest.fixture
def odd() -> Iterator[OddConnvo]:
    server = OddConnvo()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def odd_dev(odd, settings, agent_token) -> OddConnvo:
    """The agent's "dev" deployment is the stand-in (the token saved for it is the fake's)."""
    settings.CONNVO_DEPLOYMENTS = {**settings.CONNVO_DEPLOYMENTS, "dev": odd.url}
    return odd


def look_up(server: OddConnvo) -> connvo.Lookup:
    return connvo.get_meeting(
        deployment=Deployment(name="dev", url=server.url), token="a-token", meeting_id=MEETING_ID
    )


def page(agent_client) -> tuple[int, str]:
    response = agent_client.get(reverse("meetings:detail", args=["dev", MEETING_ID]))
    return response.status_code, response.content.decode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- Nesting ------------------------------------------------------------------------------------


def test_a_body_nested_past_the_parser_is_a_bad_response(odd_dev, agent_client):
    odd_dev.answer('{"status":"success","value":' + nested(100_000) + "}")

    status, shown = page(agent_client)

    assert status == 502
    assert "not in Connvo" in shown
    assert AuditEntry.objects.get(action=Action.LOOKUP).outcome == "bad_response"


@examples(
    deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(depth=st.integers(1, 12_000))
def test_any_nesting_is_a_meeting_or_a_typed_error(odd, depth):
    odd.answer(found(extra=nested(depth)))

    try:
        lookup = look_up(odd)
    except connvo.BadResponse:
        assert depth > 16  # far deeper than any meeting's fields
        return
    assert lookup.meeting.id == MEETING_ID
