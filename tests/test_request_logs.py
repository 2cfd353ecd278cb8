"""Structured logs: one JSON line per request with its id (also sent back as X-Request-ID and
honoured only from a trusted proxy), and no token, cookie or Authorization header in any line
across a whole sign-in and lookup flow."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from django.db import OperationalError
from django.test import Client

from accounts.session_store import SessionStore
from connvo_admin.logs import JsonFormatter, redact
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything logged, at every level, formatted as the console writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_request_has_one_line_with_its_id(agent_client: Client, log_lines):
    response = agent_client.get("/tokens/")

    request_lines = [line for line in lines(log_lines) if line["logger"] == "console.request"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["request_id"] == response["X-Request-ID"]
    assert line["message"] == "GET /tokens/ 200"
    assert line["method"] == "GET"
    assert line["path"] == "/tokens/"
    assert line["status"] == 200
    assert line["user"] == "agent"
    assert line["client_ip"] == "127.0.0.1"
    assert line["htmx"] is False
    assert line["duration_ms"] >= 0


def test_a_request_id_is_taken_only_from_a_trusted_proxy(client: Client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.10"]
    offered = "0123456789abcdef0123456789abcdef"

    from_proxy = client.get("/healthz", HTTP_X_REQUEST_ID=offered, REMOTE_ADDR="10.0.0.10")
    from_anyone = client.get("/healthz", HTTP_X_REQUEST_ID=offered, REMOTE_ADDR="10.0.0.99")
    malformed = client.get("/healthz", HTTP_X_REQUEST_ID="a b\nc", REMOTE_ADDR="10.0.0.10")

    assert from_proxy["X-Request-ID"] == offered
    assert from_anyone["X-Request-ID"] != offered
    assert " " not in malformed["X-Request-ID"]


def test_lines_logged_during_a_request_carry_its_id(agent_client: Client, log_lines):
    response = agent_client.get("/meetings/nowhere/jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a/")

    lookup = [line for line in lines(log_lines) if line["logger"] == "meetings.lookups"]
    assert lookup and lookup[0]["request_id"] == response["X-Request-ID"]


def test_anything_shaped_like_a_credential_is_masked():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLWJ5dGVz"

    assert redact(f"token {jwt} rejected") == "token [redacted] rejected"
    assert redact("Authorization: Bearer abcdefgh12345678") == "Authorization: [redacted]"
    record = logging.makeLogRecord({"msg": "failed: %s", "args": (jwt,), "levelno": 40})
    assert jwt not in JsonFormatter().format(record)


def test_no_token_cookie_or_authorization_in_any_line_of_a_whole_flow(
    agent, agent_token, fake_connvo, log_lines, settings, caplog
):
    client = Client()
    client.get("/accounts/login/")
    client.post("/accounts/login/", {"username": "agent", "password": "wrong"})
    client.post("/accounts/login/", {"username": "agent", "password": PASSWORD})
    cookies = {name: morsel.value for name, morsel in client.cookies.items()}
    assert cookies["sessionid"] and cookies["csrftoken"]
    path = f"/meetings/dev/{fake_connvo.meeting_id('standup')}/"
    client.get("/")
    client.get(f"/?q={fake_connvo.meeting_id('standup')}&deployment=dev")
    client.get(path)
    client.get(path, {"failures": 0, "seen": ""}, HTTP_HX_REQUEST="true")
    client.get(f"/meetings/dev/{fake_connvo.meeting_id('private')}/")
    fake_connvo.misbehave("expired_tokens")
    client.get(path)
    fake_connvo.reset_behaviour()
    fake_connvo.misbehave("garbage")
    client.get(path)
    client.get("/tokens/")
    client.post("/accounts/logout/")

    written = log_lines.getvalue()
    assert len(lines(log_lines)) > 10
    assert agent_token not in written
    for part in agent_token.split("."):
        assert part not in written
    for name, value in cookies.items():
        assert value not in written, name
    assert "Authorization" not in written
    assert "Bearer" not in written


def test_static_files_and_health_probes_are_logged_only_when_debugging(client: Client, log_lines):
    logging.getLogger().setLevel(logging.INFO)
    client.get("/healthz")
    client.get("/static/css/console.css")
    client.get("/accounts/login/")

    paths = [line["path"] for line in lines(log_lines) if line["logger"] == "console.request"]
    assert paths == ["/accounts/login/"]


def test_a_request_whose_session_cannot_be_read_is_still_logged(
    agent_client: Client, log_lines, monkeypatch
):
    def database_down(self):
        raise OperationalError("the database went away")

    monkeypatch.setattr(SessionStore, "load", database_down)
    agent_client.raise_request_exception = False

    response = agent_client.get("/")

    # The database page (connvo_admin/unavailable.py), no longer the generic 500.
    assert response.status_code == 503
    request_lines = [line for line in lines(log_lines) if line["logger"] == "console.request"]
    assert request_lines[-1]["status"] == 503
    assert request_lines[-1]["user"] == ""
