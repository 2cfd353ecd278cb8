"""No Connvo token (pasted, renewed, or a WorkOS refresh token), nor any 12-character piece of one,
ever reaches a log record, a handler's output, a page, a command's output, an audit row or an
export.

The log formatter masks anything shaped like a bearer credential, so reading only formatted lines
cannot tell "never logged" from "logged and masked": these tests read the raw records too, and
each configured handler's own output for them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from meetings import credentials
from meetings.models import StaffToken
from tests.test_credentials import connect, expire_soon, look_up, stored_refresh_token

pytestmark = pytest.mark.django_db

FRAGMENT = 12
# Attributes every LogRecord has; anything else came from `extra=`.
_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class RawRecords(logging.Handler):
    """Every record as it was logged, before any formatter touches it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[str]:
        formatter = logging.Formatter()
        # The handlers the console configured (settings.LOGGING), each formatting every record.
        configured = [h for h in logging.getLogger().handlers if h is not self]
        assert configured, "the console's own log handlers are missing"
        for record in self.records:
            yield str(record.msg)
            yield repr(record.args)
            yield record.getMessage()
            if record.exc_info:
                yield formatter.formatException(record.exc_info)
            for name, value in vars(record).items():
                if name not in _RECORD_ATTRS:
                    yield f"{name}={value!r}"
            for handler in configured:
                yield handler.format(record)


@pytest.fixture
def raw_logs() -> Iterator[RawRecords]:
    handler = RawRecords()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


class Seen:
    """Everything a person or a machine outside the console could read."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def response(self, response) -> None:
        body = (
            b"".join(response.streaming_content) if response.streaming else response.content
        ).decode()
        headers = "\n".join(f"{name}: {value}" for name, value in response.items())
        self.add(f"page {response.request['PATH_INFO']}", headers + "\n" + body)


def stored_access_token(user) -> str:
    return credentials.reveal(StaffToken.objects.get(user=user, deployment="dev"))


def assert_no_piece_of(secrets: list[str], seen: list[tuple[str, str]]) -> None:
    fragments = {
        secret[i : i + FRAGMENT]: secret for secret in secrets for i in range(len(secret) - 11)
    }
    assert all(len(secret) >= 2 * FRAGMENT for secret in secrets)
    for where, text in seen:
        for i in range(len(text) - FRAGMENT + 1):
            piece = text[i : i + FRAGMENT]
            assert piece not in fragments, f"{where} contains {piece!r}, a piece of a token"


def audit_rows_and_exports(auditor_client: Client, seen: Seen) -> None:
    for entry in AuditEntry.objects.values():
        seen.add(f"audit row {entry['id']}", repr(entry))
    for path in (
        reverse("audit:list") + "?refreshes=on",
        reverse("audit:export", args=["csv"]) + "?refreshes=on",
        reverse("audit:export", args=["jsonl"]) + "?refreshes=on",
    ):
        seen.response(auditor_client.get(path))
    for entry in AuditEntry.objects.all():
        seen.response(auditor_client.get(reverse("audit:entry", args=[entry.pk])))


def test_a_pasted_token_never_leaks(
    agent, agent_client, auditor_client, fake_connvo, raw_logs, settings
):
    settings.DEBUG = False
    token = fake_connvo.token_for("agent")
    seen = Seen()
    standup = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    private = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("private")])

    seen.response(
        agent_client.post(
            reverse("meetings:token_save", args=["dev"]),
            {"dev-deployment": "dev", "dev-token": token},
            follow=True,
        )
    )
    assert stored_access_token(agent) == token
    seen.response(agent_client.get(reverse("meetings:tokens")))
    seen.response(agent_client.get(f"/?q={fake_connvo.meeting_id('standup')}&deployment=dev"))
    seen.response(agent_client.get(standup))
    seen.response(agent_client.get(standup, {"failures": 0, "seen": ""}, HTTP_HX_REQUEST="true"))
    seen.response(agent_client.get(private))
    for misbehaviour in ("expired_tokens", "garbage", "redact"):
        fake_connvo.misbehave(misbehaviour)
        seen.response(agent_client.get(standup))
        fake_connvo.reset_behaviour()
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "connvo_lookup",
        fake_connvo.meeting_id("standup"),
        "--user",
        "agent",
        "--json",
        stdout=out,
        stderr=err,
    )
    call_command("connvo_token", "show", "--user", "agent", stdout=out, stderr=err)
    seen.add("command output", out.getvalue() + err.getvalue())
    audit_rows_and_exports(auditor_client, seen)

    assert len(raw_logs.records) > 10
    assert_no_piece_of([token], [*seen.texts, *(("log", t) for t in raw_logs.texts())])


@pytest.mark.usefixtures("workos")
def test_workos_tokens_and_their_renewals_never_leak(
    agent, agent_client, auditor_client, fake_connvo, raw_logs
):
    seen = Seen()
    standup = reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])

    seen.response(connect(agent_client, fake_connvo))
    first_access = stored_access_token(agent)
    first_refresh = stored_refresh_token(agent)
    seen.response(agent_client.get(standup))
    expire_soon(agent)
    seen.response(agent_client.get(standup))
    expire_soon(agent)
    look_up(agent, fake_connvo)
    renewed_access = stored_access_token(agent)
    renewed_refresh = stored_refresh_token(agent)
    assert len({first_access, renewed_access}) == 2
    assert len({first_refresh, renewed_refresh}) == 2
    seen.response(agent_client.get(standup, {"failures": 0, "seen": ""}, HTTP_HX_REQUEST="true"))
    seen.response(agent_client.get(reverse("meetings:tokens")))
    seen.response(
        agent_client.post(reverse("meetings:connect_disconnect", args=["dev"]), follow=True)
    )
    audit_rows_and_exports(auditor_client, seen)

    secrets = [first_access, first_refresh, renewed_access, renewed_refresh]
    secrets += [session.refresh_token for session in fake_connvo.sessions.values()]
    assert len(raw_logs.records) > 10
    assert_no_piece_of(secrets, [*seen.texts, *(("log", t) for t in raw_logs.texts())])
