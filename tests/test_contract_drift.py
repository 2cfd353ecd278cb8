"""A changing Connvo does not hide the meeting: unknown enum values show as a neutral badge with
the value as sent, a missing or mistyped field shows "—" with the reason, only an answer that
cannot be a meeting (not an object, no `_id`) is an error. The audit entry says found and notes
the drift, polling goes on, and `connvo_lookup --json` prints the meeting as sent."""

from __future__ import annotations

import io
import json
import math
import re

import pytest
import requests
from django.core.management import call_command
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.models import Action, AuditEntry
from meetings import connvo, sync
from meetings.deployments import Deployment

pytestmark = pytest.mark.django_db

DEPLOYMENT = Deployment(name="dev", url="http://127.0.0.1:9")


def detail_url(fake_connvo, label="standup") -> str:
    return reverse("meetings:detail", args=["dev", fake_connvo.meeting_id(label)])


def test_an_unknown_state_shows_a_neutral_badge_and_a_notice(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.misbehave("schema_drift", field="state", value="archived")

    response = agent_client.get(detail_url(fake_connvo))

    page = response.content.decode()
    assert response.status_code == 200
    assert "badge--unknown" in page
    assert "<bdi>archived</bdi>" in page
    assert "does not fully know yet" in page
    assert "has the value &#x27;archived&#x27;, which the console does not know yet" in page
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert entry.outcome == "found"
    assert "contract drift: state has the value 'archived'" in entry.detail


def test_a_missing_or_mistyped_field_shows_a_dash_with_the_reason(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.misbehave("schema_drift", field="title", drop=True)
    fake_connvo.misbehave("schema_drift", field="participantCount", value="five")

    response = agent_client.get(detail_url(fake_connvo))

    page = response.content.decode()
    assert response.status_code == 200
    # The dash, and why in text (shown under the dash where there is no hover: a phone).
    assert re.search(
        r'<span class="missing" title="Connvo&#x27;s answer: title is missing">'
        r'<span aria-hidden="true">—</span>'
        r'<span class="missing__why">Connvo&#x27;s answer: title is missing</span></span>',
        page,
    )
    assert "participant count is &quot;five&quot;, expected a number" in page


def test_a_number_too_large_for_any_float_is_drift_not_an_error(
    agent_client, agent_token, fake_connvo
):
    # 401 digits: a JSON number, but no Convex number (a float64) is that large.
    fake_connvo.misbehave("schema_drift", field="participantCount", value=10**400)

    response = agent_client.get(detail_url(fake_connvo))

    assert response.status_code == 200
    assert "participant count is 1000000000" in response.content.decode()
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert entry.outcome == "found"
    assert "contract drift: participantCount is 1000000000" in entry.detail


@pytest.mark.parametrize(
    "sent_id",
    [
        pytest.param("a/b", id="a-slash"),
        pytest.param("<b>x</b>", id="html"),
        pytest.param("ab\x00c", id="nul"),
        pytest.param("jh7atp9zawv2fvf0f1k3ggam4xgzvfez", id="another-meeting"),
    ],
)
def test_an_id_other_than_the_one_asked_for_is_drift_and_never_shown(
    agent_client, agent_token, fake_connvo, sent_id
):
    asked = fake_connvo.meeting_id("standup")
    fake_connvo.misbehave("schema_drift", field="_id", value=sent_id)

    response = agent_client.get(detail_url(fake_connvo))

    page = response.content.decode()
    assert response.status_code == 200
    assert f'<code id="meeting-id">{asked}</code>' in page  # what Copy ID copies
    assert reverse("meetings:watch", args=["dev", asked]) in page
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert (entry.outcome, entry.meeting_id) == ("found", asked)
    assert "contract drift: _id is " in entry.detail


def test_polling_goes_on_for_a_meeting_in_an_unknown_state(agent_client, agent_token, fake_connvo):
    fake_connvo.misbehave("schema_drift", field="state", value="archived")

    response = agent_client.get(detail_url(fake_connvo), headers={"HX-Request": "true"})

    assert response.status_code == 200  # not 286: polling continues
    assert 'data-status="live"' in response.content.decode()


def test_a_drift_that_starts_on_a_live_refresh_brings_its_notice(
    agent_client, agent_token, fake_connvo
):
    notice = re.compile(
        r'<div id="drift-notice" hx-swap-oob="innerHTML">\s*<div class="alert alert--warning" '
        r'role="status" data-drift>.*does not fully know yet.*archived.*</div>\s*</div>',
        re.S,
    )
    opened = agent_client.get(detail_url(fake_connvo)).content.decode()
    assert '<div id="drift-notice"></div>' in opened  # where a refresh puts the notice

    fake_connvo.misbehave("schema_drift", field="state", value="archived")
    drifted = agent_client.get(detail_url(fake_connvo), headers={"HX-Request": "true"})
    fake_connvo.reset_behaviour()
    mended = agent_client.get(detail_url(fake_connvo), headers={"HX-Request": "true"})

    assert notice.search(drifted.content.decode())
    # Once Connvo sends the known shape again, the notice goes.
    assert '<div id="drift-notice" hx-swap-oob="innerHTML"></div>' in mended.content.decode()


def test_the_command_prints_the_meeting_as_sent_and_the_drift_on_stderr(
    agent, agent_token, fake_connvo
):
    fake_connvo.misbehave("schema_drift", field="state", value="archived")
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "connvo_lookup",
        fake_connvo.meeting_id("standup"),
        "--user",
        "agent",
        "--deployment",
        "dev",
        "--json",
        stdout=out,
        stderr=err,
    )

    assert json.loads(out.getvalue())["state"] == "archived"
    assert "contract drift: state has the value 'archived'" in err.getvalue()


# --- The contract parser takes any JSON -----------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    # Past any float64 (about 1.8e308), to a few hundred digits.
    | st.integers(min_value=2**1024, max_value=10**400)
    | st.integers(min_value=-(10**400), max_value=-(2**1024))
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = sorted(connvo._REQUIRED | connvo._OPTIONAL)
ASKED = "jd7f3s4h7yvxqrw0c8h5k3x2kn6r1m9a"
MEETINGISH = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=len(FIELDS)).map(
    lambda value: value | {"_id": ASKED}
)


@given(st.one_of(JSON, MEETINGISH))
def test_any_json_is_a_meeting_or_a_typed_error(value):
    context = {"http_status": 200, "latency_ms": 0, "attempts": 1}
    try:
        meeting = connvo.read_value(value, DEPLOYMENT, meeting_id=ASKED, **context).meeting
    except connvo.MeetingNotFound:
        assert value is None
        return
    except connvo.SchemaMismatch as error:
        assert error.field_name in {"value", "_id"}
        return
    assert meeting.id == ASKED
    # As sent, but storable: JSON's NUL escape (here the only such character) reads U+FFFD.
    assert json.dumps(meeting.raw) == json.dumps(value).replace("\\u0000", "\\ufffd")
    for name in ("creation_time", "created_at", "duration", "participant_count"):
        number = getattr(meeting, name)
        assert number is None or (isinstance(number, int | float) and math.isfinite(number))
    for item in meeting.drift:
        assert item.field_name in value or item.problem == "is missing"


@given(sent_id=st.text(st.characters(codec=None), min_size=1) | st.just(ASKED))
def test_the_meeting_is_the_one_asked_for_whatever_id_connvo_sends(sent_id):
    context = {"http_status": 200, "latency_ms": 0, "attempts": 1}

    meeting = connvo.read_value({"_id": sent_id}, DEPLOYMENT, meeting_id=ASKED, **context).meeting

    assert meeting.id == ASKED
    assert ("id" in meeting.drift_reasons) == (sent_id != ASKED)


@settings(deadline=None)
@given(MEETINGISH)
def test_any_meeting_renders(value):
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    meeting = connvo._parse_meeting(value, DEPLOYMENT, {}, meeting_id=ASKED)
    html = render_to_string(
        "meetings/meeting_detail.html",
        {"meeting": meeting, "deployment_name": "dev", "live": None},
        # As every page is rendered: the template reads the request's path.
        request=RequestFactory().get(f"/meetings/dev/{meeting.id}/"),
    )
    assert meeting.id in html


def test_a_pushed_answer_naming_another_meeting_is_drift_and_never_shown(agent_token, fake_connvo):
    """Pushed answers are read by the same function (meetings/sync.py), for the meeting the page
    subscribed to: Connvo's `_id` never replaces it."""
    asked, other = fake_connvo.meeting_id("standup"), fake_connvo.meeting_id("planning")
    sent = requests.post(
        f"{fake_connvo.url}/api/run/meetings/queries/getMeeting",
        json={"args": {"meetingId": other}},
        headers={"Authorization": f"Bearer {agent_token}"},
        timeout=5,
    ).json()["value"]
    deployment = Deployment(name="dev", url=fake_connvo.url)

    result = sync._result(
        sync._Answer(failed=False, value=sent),
        deployment,
        meeting_id=asked,
        latency_ms=0,
        attempts=0,
    )

    assert result.meeting.id == asked
    assert result.meeting.describe_drift().startswith("_id is ")


def test_an_unknown_value_of_any_length_is_shown_and_noted_cut(
    agent_client, agent_token, fake_connvo
):
    """A state of 100,000 characters: the badge and the drift note (on the page and on record)
    show its start, not all of it, in every row of a table as on the meeting page."""
    fake_connvo.misbehave("schema_drift", field="state", value="archived" + "x" * 100_000)

    page = agent_client.get(detail_url(fake_connvo)).content.decode()

    badge = re.search(r'badge--unknown"[^>]*>.*?<bdi>([^<]*)</bdi>', page, re.S).group(1)
    assert badge.startswith("archived") and len(badge) <= 40
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert "has the value 'archivedxxx" in entry.detail and len(entry.detail) < 200
