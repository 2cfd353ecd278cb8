"""`manage.py connvo_token` and `manage.py connvo_lookup`."""

import io
import json

import pytest
import requests
from django.core.management import CommandError, call_command

from audit.models import AuditEntry, Via
from meetings import credentials
from meetings.models import StaffToken

pytestmark = pytest.mark.django_db


def run(*args, stdin: str = "", monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = 0
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_token_set_reads_stdin(agent, fake_connvo, monkeypatch):
    token = fake_connvo.token_for("agent")

    code, out, _ = run(
        "connvo_token",
        "set",
        "--user",
        "agent",
        "--deployment",
        "dev",
        stdin=token + "\n",
        monkeypatch=monkeypatch,
    )

    assert code == 0
    assert credentials.reveal(StaffToken.objects.get(user=agent, deployment="dev")) == token
    assert token not in out
    assert f"…{token[-4:]}" in out


def test_token_set_refuses_garbage(agent, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("nope\n"))

    with pytest.raises(CommandError, match="three parts"):
        call_command(
            "connvo_token", "set", "--user", "agent", "--deployment", "dev", stdout=io.StringIO()
        )


def test_token_set_unknown_user():
    with pytest.raises(CommandError, match="no console user"):
        call_command("connvo_token", "show", "--user", "nobody")


def test_lookup_json_prints_connvos_value_exactly(agent, agent_token, fake_connvo):
    meeting_id = fake_connvo.meeting_id("planning")

    code, out, _ = run("connvo_lookup", meeting_id, "--user", "agent", "--json")

    assert code == 0
    # What Connvo itself answers to the same question, asked directly.
    direct = requests.post(
        fake_connvo.url + "/api/run/meetings/queries/getMeeting",
        json={"args": {"meetingId": meeting_id}, "format": "json"},
        headers={"Authorization": f"Bearer {agent_token}"},
        timeout=5,
    ).json()
    assert json.loads(out) == direct["value"]
    entry = AuditEntry.objects.get()
    assert entry.via == Via.CLI
    assert entry.outcome == "found"


@pytest.mark.parametrize(
    ("meeting", "kind"),
    [
        ("private", "not_visible"),
        ("nonsense-id", "invalid_id"),
    ],
)
def test_lookup_json_failure_has_a_stable_kind(agent, agent_token, fake_connvo, meeting, kind):
    meeting_id = meeting if meeting == "nonsense-id" else fake_connvo.meeting_id(meeting)

    code, out, _ = run("connvo_lookup", meeting_id, "--user", "agent", "--json")

    assert code == 1
    body = json.loads(out)
    assert body["error"] == kind
    assert body["message"]
    if kind == "not_visible":
        assert body["request_id"]


def test_lookup_without_token(agent, fake_connvo):
    code, out, _ = run(
        "connvo_lookup", fake_connvo.meeting_id("standup"), "--user", "agent", "--json"
    )

    assert code == 1
    assert json.loads(out)["error"] == "no_token"


def test_lookup_text_output(agent, agent_token, fake_connvo):
    code, out, _ = run("connvo_lookup", fake_connvo.meeting_id("standup"), "--user", "agent")

    assert code == 0
    assert "state active" in out
    assert "participant, joined" in out


def test_lookup_unknown_user_json():
    code, out, _ = run("connvo_lookup", "x" * 32, "--user", "ghost", "--json")

    assert code == 1
    assert json.loads(out)["error"] == "unknown_user"
