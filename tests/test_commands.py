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
        # As the help promises, and as each line of many meetings: which meeting failed.
        assert body["meeting_id"] == meeting_id
        assert body["request_id"]
    else:
        assert "meeting_id" not in body  # the reference held no ID


def test_one_meetings_failure_line_is_the_line_it_gets_among_many(agent, agent_token, fake_connvo):
    private, standup = fake_connvo.meeting_id("private"), fake_connvo.meeting_id("standup")

    _, alone, _ = run("connvo_lookup", private, "--user", "agent", "--json")
    _, among_many, _ = run("connvo_lookup", private, standup, "--user", "agent", "--json")

    lines = [alone.strip(), among_many.splitlines()[0]]
    bodies = [json.loads(line) for line in lines]
    assert set(bodies[0]) == {"meeting_id", "error", "message", "request_id"}
    # Connvo gives each request its own id; all else is the same, printed the same way.
    assert {**bodies[0], "request_id": ""} == {**bodies[1], "request_id": ""}
    assert lines == [json.dumps(body, sort_keys=True) for body in bodies]


def test_lookup_without_token(agent, fake_connvo):
    code, out, _ = run(
        "connvo_lookup", fake_connvo.meeting_id("standup"), "--user", "agent", "--json"
    )

    assert code == 1
    body = json.loads(out)
    assert body["error"] == "no_token"
    assert body["meeting_id"] == fake_connvo.meeting_id("standup")
    assert "request_id" not in body  # Connvo was not asked


def test_lookup_text_output(agent, agent_token, fake_connvo):
    code, out, _ = run("connvo_lookup", fake_connvo.meeting_id("standup"), "--user", "agent")

    assert code == 0
    assert "state active" in out
    assert "participant, joined" in out


def test_lookup_text_failure_names_the_meeting(agent, agent_token, fake_connvo):
    private = fake_connvo.meeting_id("private")

    code, out, err = run("connvo_lookup", private, "--user", "agent")

    assert code == 1 and out == ""
    assert err.startswith(f"{private}  not_visible: ")


def test_lookup_unknown_user_json():
    code, out, _ = run("connvo_lookup", "x" * 32, "--user", "ghost", "--json")

    assert code == 1
    assert json.loads(out)["error"] == "unknown_user"


# --- Many meetings at once ------------------------------------------------------------------


def test_lookup_many_prints_one_json_line_per_meeting_in_order(agent, agent_token, fake_connvo):
    labels = ("retro", "private", "standup")
    ids = [fake_connvo.meeting_id(label) for label in labels]

    code, out, _ = run("connvo_lookup", *ids, "--user", "agent", "--json")

    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1  # one of them is not visible
    assert [line.get("_id", line.get("meeting_id")) for line in lines] == ids
    assert lines[0]["state"] == "concluded" and lines[2]["title"] == "Support Team Daily Standup"
    assert lines[1]["error"] == "not_visible" and lines[1]["message"]
    assert list(AuditEntry.objects.values_list("via", flat=True)) == [Via.CLI] * 3


def test_lookup_many_exits_0_when_every_meeting_is_found(agent, agent_token, fake_connvo):
    ids = [fake_connvo.meeting_id(label) for label in ("standup", "planning")]

    code, out, _ = run("connvo_lookup", *ids, "--user", "agent", "--json")

    assert code == 0
    assert [json.loads(line)["_id"] for line in out.splitlines()] == ids


def test_lookup_reads_a_blob_from_standard_input(agent, agent_token, fake_connvo, monkeypatch):
    standup, planning = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("planning")
    blob = f"10:32 ERROR meeting={standup} failed\n10:33 retry meeting={planning}; {standup}\n"

    code, out, _ = run(
        "connvo_lookup",
        "--file",
        "-",
        "--user",
        "agent",
        "--json",
        stdin=blob,
        monkeypatch=monkeypatch,
    )

    assert code == 0
    assert [json.loads(line)["_id"] for line in out.splitlines()] == [standup, planning]
    assert fake_connvo.call_count == 2


def test_lookup_many_lists_what_was_not_an_id_and_fails(agent, agent_token, fake_connvo):
    # A mistyped ID (capitals): a request or trace ID beside the IDs would only be ignored.
    mistyped = fake_connvo.meeting_id("planning").upper()
    code, out, err = run(
        "connvo_lookup",
        fake_connvo.meeting_id("standup"),
        mistyped,
        "--user",
        "agent",
        "--json",
    )

    assert code == 1
    assert len(out.splitlines()) == 1
    assert mistyped in err


def test_lookup_many_with_no_id_at_all(agent, agent_token, fake_connvo, monkeypatch):
    code, out, _ = run(
        "connvo_lookup",
        "--file",
        "-",
        "--user",
        "agent",
        "--json",
        stdin="nothing here",
        monkeypatch=monkeypatch,
    )

    assert code == 1
    assert json.loads(out)["error"] == "invalid_id"
    assert fake_connvo.call_count == 0


def test_lookup_many_text_output(agent, agent_token, fake_connvo):
    code, out, _ = run(
        "connvo_lookup",
        fake_connvo.meeting_id("standup"),
        fake_connvo.meeting_id("private"),
        "--user",
        "agent",
    )

    assert code == 1
    assert "Support Team Daily Standup" in out
    assert f"{fake_connvo.meeting_id('private')}  not_visible:" in out
