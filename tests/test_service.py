"""The Connvo client (meetings/connvo.py) against a fake Connvo deployment over real HTTP."""

from __future__ import annotations

import contextlib
import json
import logging

import pytest

from connvo_admin.meeting_ids import InvalidMeetingId
from meetings import connvo
from meetings.connvo import MeetingState, UserPresence, UserRole
from meetings.deployments import Deployment

REQUIRED_FIELDS = {
    "_creationTime",
    "_id",
    "activeWebRTCSessions",
    "createdAt",
    "organizerId",
    "state",
    "title",
    "updatedAt",
    "userPresence",
    "userRole",
}


@pytest.fixture
def dev(fake_connvo) -> Deployment:
    return Deployment(name="dev", url=fake_connvo.url)


def look_up(fake, deployment, label_or_id, token=None):
    meeting_id = label_or_id if len(label_or_id) > 30 else fake.meeting_id(label_or_id)
    return connvo.get_meeting(
        deployment=deployment,
        token=token if token is not None else fake.token_for("agent"),
        meeting_id=meeting_id,
    )


# --- Success --------------------------------------------------------------------------------------


def test_found_meeting_has_every_contract_field_typed(fake_connvo, dev):
    result = look_up(fake_connvo, dev, "planning")

    meeting = result.meeting
    assert result.http_status == 200
    assert result.attempts == 1
    assert meeting.id == fake_connvo.meeting_id("planning")
    assert meeting.state is MeetingState.SCHEDULED
    assert meeting.user_role is UserRole.HOST
    assert meeting.user_presence is UserPresence.INVITED
    assert meeting.average_rating == pytest.approx(4.6)
    assert meeting.duration == 3600
    assert meeting.webrtc_enabled is True
    assert meeting.stream_room_id
    assert isinstance(meeting.creation_time, float | int)
    assert set(meeting.raw) >= REQUIRED_FIELDS
    # The raw value is exactly what Connvo sent.
    assert meeting.raw["title"] == meeting.title


def test_optional_fields_absent_are_none_not_zero(fake_connvo, dev):
    meeting = look_up(fake_connvo, dev, "minimal").meeting

    assert meeting.average_rating is None
    assert meeting.description is None
    assert meeting.duration is None
    assert meeting.scheduled_at is None
    assert meeting.stream_room_id is None
    assert meeting.participant_count is None
    assert meeting.webrtc_enabled is None


def test_fractional_timestamps_are_kept(fake_connvo, dev):
    fake_connvo.update_meeting("standup", _creationTime=1732530123456.789)

    meeting = look_up(fake_connvo, dev, "standup").meeting

    assert meeting.creation_time == pytest.approx(1732530123456.789)


def test_request_follows_the_contract(fake_connvo, dev):
    token = fake_connvo.token_for("agent")
    meeting_id = fake_connvo.meeting_id("standup")

    look_up(fake_connvo, dev, "standup", token=token)

    [call] = fake_connvo.calls
    assert call.method == "POST"
    assert call.path == "/api/run/meetings/queries/getMeeting"
    assert call.headers["authorization"] == f"Bearer {token}"
    name, _, version = call.headers["convex-client"].rpartition("-")
    assert name and version.count(".") == 2
    assert json.loads(call.body) == {"args": {"meetingId": meeting_id}, "format": "json"}


def test_http_560_is_a_function_outcome_like_200(fake_connvo, dev):
    fake_connvo.misbehave("status_560")

    result = look_up(fake_connvo, dev, "standup")

    assert result.http_status == 560
    assert result.meeting.state is MeetingState.ACTIVE


def test_one_pooled_session_per_process():
    assert connvo._http() is connvo._http()


# --- Function outcomes that are not a meeting -----------------------------------------------------


def test_null_value_means_not_found(fake_connvo, dev):
    with pytest.raises(connvo.MeetingNotFound) as caught:
        look_up(fake_connvo, dev, fake_connvo.unknown_meeting_id())

    assert caught.value.kind == "not_found"
    assert caught.value.http_status == 200


def test_not_a_participant_is_not_visible_with_request_id(fake_connvo, dev):
    with pytest.raises(connvo.MeetingNotVisible) as caught:
        look_up(fake_connvo, dev, "private")

    error = caught.value
    assert error.kind == "not_visible"
    assert error.request_id and len(error.request_id) >= 8
    assert "participant" in error.message
    assert "FORBIDDEN" in error.detail


def test_token_without_sub_is_rejected(fake_connvo, dev):
    token = fake_connvo.issue_token(sub="ignored", include_sub=False)

    with pytest.raises(connvo.TokenRejected) as caught:
        look_up(fake_connvo, dev, "standup", token=token)

    assert "UNAUTHORIZED" in caught.value.detail


def test_unknown_user_is_not_provisioned(fake_connvo, dev):
    token = fake_connvo.issue_token(sub=fake_connvo.unprovisioned_sub)

    with pytest.raises(connvo.NotProvisioned) as caught:
        look_up(fake_connvo, dev, "standup", token=token)

    assert "provision" in caught.value.message


def test_id_of_another_table_is_an_invalid_id(fake_connvo, dev):
    with pytest.raises(InvalidMeetingId) as caught:
        look_up(fake_connvo, dev, fake_connvo.users_table_id())

    assert caught.value.request_id
    assert "ArgumentValidationError" in caught.value.detail


def test_redacted_production_error_keeps_the_request_id(fake_connvo, dev):
    fake_connvo.misbehave("redact")

    with pytest.raises(connvo.ConnvoServerError) as caught:
        look_up(fake_connvo, dev, fake_connvo.users_table_id())

    assert caught.value.kind == "server_error"
    assert caught.value.request_id
    assert caught.value.request_id in caught.value.detail
    assert "check the ID" in caught.value.message


def test_redaction_keeps_application_errors(fake_connvo, dev):
    fake_connvo.misbehave("redact")

    with pytest.raises(connvo.MeetingNotVisible):
        look_up(fake_connvo, dev, "private")


# --- Request-level failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda fake: fake.issue_token(sub=fake.users["agent"].sub, expires_in=-60), id="expired"
        ),
        pytest.param(
            lambda fake: fake.issue_token(sub=fake.users["agent"].sub, foreign_key=True),
            id="signed-by-someone-else",
        ),
        pytest.param(lambda fake: "not-a-jwt", id="garbage"),
    ],
)
def test_bad_token_asks_agent_to_update_it(fake_connvo, dev, make_token):
    with pytest.raises(connvo.TokenRejected) as caught:
        look_up(fake_connvo, dev, "standup", token=make_token(fake_connvo))

    assert caught.value.http_status == 401
    assert "Tokens page" in caught.value.message
    assert fake_connvo.call_count == 1  # never retried


def test_expired_token_switch(fake_connvo, dev):
    fake_connvo.misbehave("expired_tokens")

    with pytest.raises(connvo.TokenRejected):
        look_up(fake_connvo, dev, "standup")


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, connvo.ConnvoBadRequest),
        (403, connvo.ConnvoBadRequest),
        (404, connvo.ConnvoBadRequest),
        (408, connvo.ConnvoTimeout),
        (429, connvo.RateLimited),
        (500, connvo.ConnvoServerError),
    ],
)
def test_request_level_failures_are_typed_and_not_retried(fake_connvo, dev, status, error_class):
    fake_connvo.misbehave("status", status=status)

    with pytest.raises(error_class) as caught:
        look_up(fake_connvo, dev, "standup")

    assert caught.value.http_status == status
    assert fake_connvo.call_count == 1


def test_overload_is_retried_then_succeeds(fake_connvo, dev, settings):
    settings.CONNVO_RETRIES = 2
    fake_connvo.misbehave("overloaded", times=2)

    result = look_up(fake_connvo, dev, "standup")

    assert result.attempts == 3
    assert fake_connvo.call_count == 3


def test_persistent_overload_gives_up_after_the_retry_budget(fake_connvo, dev, settings):
    settings.CONNVO_RETRIES = 1
    fake_connvo.misbehave("overloaded", times=10)

    with pytest.raises(connvo.ConnvoOverloaded) as caught:
        look_up(fake_connvo, dev, "standup")

    assert caught.value.http_status == 503
    assert fake_connvo.call_count == 2


def test_slow_answer_times_out_without_retry(fake_connvo, dev, settings):
    settings.CONNVO_READ_TIMEOUT = 0.3
    fake_connvo.misbehave("slow", delay=1.5)

    with pytest.raises(connvo.ConnvoTimeout) as caught:
        look_up(fake_connvo, dev, "standup")

    assert caught.value.attempts == 1
    assert fake_connvo.call_count == 1


def test_dropped_connection_is_retried_then_reported(fake_connvo, dev, settings):
    settings.CONNVO_RETRIES = 2
    fake_connvo.misbehave("reset")

    with pytest.raises(connvo.ConnvoUnreachable) as caught:
        look_up(fake_connvo, dev, "standup")

    assert caught.value.attempts == 3
    assert fake_connvo.call_count == 3


def test_deployment_down_is_unreachable(fake_connvo, dev):
    token = fake_connvo.token_for("agent")
    meeting_id = fake_connvo.meeting_id("standup")
    fake_connvo.down()

    with pytest.raises(connvo.ConnvoUnreachable) as caught:
        connvo.get_meeting(deployment=dev, token=token, meeting_id=meeting_id)

    assert caught.value.attempts == 3
    assert "could not connect" in caught.value.message


def test_deployment_back_up_answers_again(fake_connvo, dev):
    fake_connvo.down()
    fake_connvo.up()

    assert look_up(fake_connvo, dev, "standup").meeting.title


@pytest.mark.parametrize("kind", ["garbage", "proxy_error"])
def test_non_json_answer_is_a_bad_response(fake_connvo, dev, kind):
    fake_connvo.misbehave(kind)

    with pytest.raises(connvo.BadResponse) as caught:
        look_up(fake_connvo, dev, "standup")

    assert "text/html" in caught.value.detail
    assert fake_connvo.call_count == 1


@pytest.mark.parametrize(
    ("options", "attribute", "shown"),
    [
        ({"field": "participantCount", "value": "five"}, "participant_count", None),
        ({"field": "state", "value": "archived"}, "state", "archived"),
        ({"field": "userRole", "value": "moderator"}, "user_role", "moderator"),
        ({"field": "title", "drop": True}, "title", None),
        ({"field": "webrtcEnabled", "value": "yes"}, "webrtc_enabled", None),
    ],
)
def test_schema_drift_still_gives_the_meeting_and_names_the_field(
    fake_connvo, dev, options, attribute, shown
):
    fake_connvo.misbehave("schema_drift", **options)

    meeting = look_up(fake_connvo, dev, "standup").meeting

    assert meeting.id == fake_connvo.meeting_id("standup")
    assert getattr(meeting, attribute) == shown
    assert [item.field_name for item in meeting.drift] == [options["field"]]
    assert meeting.raw.get(options["field"]) == options.get("value")


def test_an_answer_without_an_id_is_not_a_meeting(fake_connvo, dev):
    fake_connvo.misbehave("schema_drift", field="_id", drop=True)

    with pytest.raises(connvo.SchemaMismatch) as caught:
        look_up(fake_connvo, dev, "standup")

    assert caught.value.field_name == "_id"


def test_no_token_makes_no_call(fake_connvo, dev):
    with pytest.raises(connvo.NoToken) as caught:
        look_up(fake_connvo, dev, "standup", token="")

    assert fake_connvo.call_count == 0
    # Worded as every other "no token" (tests/test_detail_view.py): one sentence, one home.
    assert caught.value.message == (
        "You have no Connvo token saved for dev. Add it on the Tokens page, then look up the "
        "meeting again."
    )


def test_no_token_where_connvo_is_connected_asks_to_connect(fake_connvo, dev, workos):
    """Where the deployment takes no pasted tokens (WorkOS: meetings/credentials.py), there is
    nothing to add: the next step is connecting the account."""
    with pytest.raises(connvo.NoToken) as caught:
        look_up(fake_connvo, dev, "standup", token="")

    assert caught.value.message == (
        "Your Connvo account is not connected for dev. Connect it on the Tokens page, then look "
        "up the meeting again."
    )


# --- Secrets stay out of logs ---------------------------------------------------------------------


def test_token_never_appears_in_any_log_record(fake_connvo, dev, caplog):
    token = fake_connvo.token_for("agent")
    caplog.set_level(logging.DEBUG)

    look_up(fake_connvo, dev, "standup", token=token)
    for label in ("private", "minimal"):
        with contextlib.suppress(connvo.ConnvoError):
            look_up(fake_connvo, dev, label, token=token)
    fake_connvo.misbehave("overloaded", times=1)
    look_up(fake_connvo, dev, "standup", token=token)
    fake_connvo.misbehave("expired_tokens")
    with pytest.raises(connvo.TokenRejected):
        look_up(fake_connvo, dev, "standup", token=token)

    assert caplog.records, "the lookup logs nothing at DEBUG: this test would prove nothing"
    signature = token.rsplit(".", 1)[1]
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        assert signature not in text
        assert token[:40] not in text
