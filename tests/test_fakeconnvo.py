"""The fake Connvo deployment speaks the getMeeting contract, fails on demand and keeps its log.

Plain HTTP against a running fake, no Django and no database: these tests pin the fake itself, so
the console's own tests can trust what it answers.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fakeconnvo import DELETE, GET_MEETING_PATH, UNAUTHENTICATED_MESSAGE, FakeConnvo
from fakeconnvo.ids import ALPHABET, table_of

REQUIRED = {
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
OPTIONAL = {
    "averageRating",
    "description",
    "duration",
    "scheduledAt",
    "streamRoomId",
    "participantCount",
    "webrtcEnabled",
}
ERROR_PREFIX = re.compile(r"\[Request ID: [0-9a-f]{16}\] Server Error")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeConnvo]:
    with FakeConnvo(seed=0) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(fake: FakeConnvo) -> None:
    fake.reset_behaviour()
    fake.reset_world()
    if not fake.is_up:
        fake.up()
    fake.clear_calls()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # never send loopback traffic through a configured proxy
        yield session


@pytest.fixture
def token(fake: FakeConnvo) -> str:
    return fake.token_for("agent")


def get_meeting(
    http: requests.Session,
    fake: FakeConnvo,
    meeting_id: Any,
    token: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    json: Any = None,
    data: bytes | None = None,
) -> requests.Response:
    sent = {"Convex-Client": "console-0.1.0"}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    if data is None and json is None:
        json = {"args": {"meetingId": meeting_id}, "format": "json"}
    return http.post(fake.url + GET_MEETING_PATH, json=json, data=data, headers=sent, timeout=5)


def assert_failure(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    assert body["message"]
    return body


def assert_convex_error(response: requests.Response, code: str, message: str, status: int) -> dict:
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "errorMessage", "errorData", "logLines"}
    assert body["status"] == "error"
    assert body["logLines"] == []
    assert body["errorData"]["code"] == code
    assert body["errorData"]["message"] == message
    assert body["errorData"]["statusCode"] == status
    first_line, rest = body["errorMessage"].split("\n", 1)
    assert ERROR_PREFIX.fullmatch(first_line)
    assert rest.startswith("Uncaught ConvexError: {")
    return body


def assert_validation_error(response: requests.Response) -> str:
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "errorMessage", "logLines"}, "no errorData"
    assert body["status"] == "error"
    first_line, rest = body["errorMessage"].split("\n", 1)
    assert ERROR_PREFIX.fullmatch(first_line)
    assert rest.startswith("ArgumentValidationError: ")
    return rest


# -- successful lookups ---------------------------------------------------------------------


def test_planning_meeting_has_every_field_of_the_contract(fake, http, token):
    response = get_meeting(http, fake, fake.meeting_id("planning"), token)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body == {"status": "success", "value": body["value"], "logLines": []}
    value = body["value"]
    assert set(value) == REQUIRED | OPTIONAL
    assert value["_id"] == fake.meeting_id("planning")
    assert value["organizerId"] == fake.users["agent"].id
    assert (value["userRole"], value["userPresence"], value["state"]) == (
        "host",
        "invited",
        "scheduled",
    )
    assert (value["averageRating"], value["duration"], value["webrtcEnabled"]) == (4.6, 3600, True)
    now_ms = time.time() * 1000
    assert 1.5 * 3600_000 < value["scheduledAt"] - now_ms < 2.5 * 3600_000
    assert isinstance(value["_creationTime"], float)
    assert value["_creationTime"] % 1 != 0, "Convex creation times are fractional"
    assert abs(value["_creationTime"] - value["createdAt"]) < 1000


def test_minimal_meeting_has_only_the_required_fields(fake, http, token):
    value = get_meeting(http, fake, fake.meeting_id("minimal"), token).json()["value"]

    assert set(value) == REQUIRED
    assert (value["userRole"], value["userPresence"], value["state"]) == (
        "participant",
        "joined",
        "scheduled",
    )


@pytest.mark.parametrize(
    ("label", "role", "presence", "state"),
    [
        ("planning", "host", "invited", "scheduled"),
        ("standup", "participant", "joined", "active"),
        ("retro", "observer", "left", "concluded"),
        ("cancelled", "participant", "invited", "cancelled"),
        ("minimal", "participant", "joined", "scheduled"),
    ],
)
def test_value_carries_the_callers_role_and_presence(
    fake, http, token, label, role, presence, state
):
    value = get_meeting(http, fake, fake.meeting_id(label), token).json()["value"]

    assert (value["userRole"], value["userPresence"], value["state"]) == (role, presence, state)
    assert REQUIRED <= set(value) <= REQUIRED | OPTIONAL


def test_role_is_the_callers_own(fake, http):
    meeting_id = fake.meeting_id("planning")
    value = get_meeting(http, fake, meeting_id, fake.token_for("alice")).json()["value"]

    assert (value["userRole"], value["userPresence"]) == ("participant", "invited")


def test_active_standup_has_live_counters_and_no_rating(fake, http, token):
    value = get_meeting(http, fake, fake.meeting_id("standup"), token).json()["value"]

    assert value["activeWebRTCSessions"] == 3
    assert value["participantCount"] == 5
    assert value["webrtcEnabled"] is True
    assert "averageRating" not in value
    started_ago = time.time() * 1000 - value["scheduledAt"]
    assert 15 * 60_000 < started_ago < 25 * 60_000


def test_retro_rating(fake, http, token):
    value = get_meeting(http, fake, fake.meeting_id("retro"), token).json()["value"]

    assert value["averageRating"] == 3.8


def test_unknown_meeting_id_returns_null(fake, http, token):
    response = get_meeting(http, fake, fake.unknown_meeting_id(), token)

    assert response.status_code == 200
    assert response.json() == {"status": "success", "value": None, "logLines": []}


def test_absent_convex_client_header_is_accepted(fake, http, token):
    response = http.post(
        fake.url + GET_MEETING_PATH,
        json={"args": {"meetingId": fake.meeting_id("planning")}},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.json()["status"] == "success"


# -- application errors (ConvexError) --------------------------------------------------------


def test_no_authorization_header_means_no_identity(fake, http):
    response = get_meeting(http, fake, fake.meeting_id("planning"))

    body = assert_convex_error(response, "UNAUTHORIZED", "Authentication required", 401)
    assert "metadata" not in body["errorData"]


def test_token_without_sub_is_unauthorized(fake, http):
    response = get_meeting(
        http, fake, fake.meeting_id("planning"), fake.issue_token(include_sub=False)
    )

    assert_convex_error(response, "UNAUTHORIZED", "Invalid authentication token", 401)


def test_unknown_user_is_not_provisioned(fake, http):
    response = get_meeting(
        http, fake, fake.meeting_id("planning"), fake.issue_token(fake.unprovisioned_sub)
    )

    body = assert_convex_error(
        response,
        "UNAUTHORIZED",
        "User not provisioned. Please complete sign-in and try again.",
        401,
    )
    assert body["errorData"]["message"].startswith("User not provisioned")


def test_non_participant_is_forbidden(fake, http, token):
    meeting_id = fake.meeting_id("private")

    body = assert_convex_error(
        get_meeting(http, fake, meeting_id, token),
        "FORBIDDEN",
        "Access denied: Not a meeting participant",
        403,
    )
    assert body["errorData"]["metadata"] == {
        "meetingId": meeting_id,
        "userId": fake.users["agent"].id,
    }
    assert (
        get_meeting(http, fake, meeting_id, fake.token_for("alice")).json()["status"] == "success"
    )


# -- argument validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meeting_id", "shown"),
    [
        ("not-a-convex-id", '"not-a-convex-id"'),
        (42, "42"),
        ("jh73saq02zp90fnrt4vh1nxh9gcpc3dx", None),  # right shape, wrong checksum
    ],
)
def test_malformed_meeting_id_fails_validation(fake, http, token, meeting_id, shown):
    message = assert_validation_error(get_meeting(http, fake, meeting_id, token))

    assert message.startswith("ArgumentValidationError: Value does not match validator.\n")
    assert "\nPath: .meetingId\n" in message
    assert message.endswith('\nValidator: v.id("meetings")')
    if shown:
        assert f"\nValue: {shown}\n" in message


def test_users_table_id_fails_validation(fake, http, token):
    users_id = fake.users_table_id()
    assert len(users_id) == len(fake.meeting_id("planning"))

    message = assert_validation_error(get_meeting(http, fake, users_id, token))

    assert f'Value: "{users_id}"' in message


def test_missing_meeting_id_fails_validation(fake, http, token):
    response = get_meeting(http, fake, None, token, json={"args": {}, "format": "json"})

    assert "missing the required field `meetingId`" in assert_validation_error(response)


def test_validation_comes_before_identity(fake, http):
    assert_validation_error(get_meeting(http, fake, "nope"))


# -- request-level errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"args": [1]}', b'{"args": "x"}', b'{"format": "json"}'],
)
def test_unusable_body_is_bad_json(fake, http, token, body):
    response = get_meeting(
        http, fake, None, token, data=body, headers={"Content-Type": "application/json"}
    )

    assert_failure(response, 400, "BadJsonBody")


def test_other_format_is_a_bad_request(fake, http, token):
    json = {"args": {"meetingId": fake.meeting_id("planning")}, "format": "convex_encoded_json"}

    assert_failure(get_meeting(http, fake, None, token, json=json), 400, "BadRequest")


def test_convex_client_without_version_is_rejected(fake, http, token):
    response = get_meeting(
        http, fake, fake.meeting_id("planning"), token, headers={"Convex-Client": "console"}
    )

    assert_failure(response, 400, "BadConvexClient")


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "abc"])
def test_malformed_authorization_header(fake, http, header):
    response = get_meeting(
        http, fake, fake.meeting_id("planning"), headers={"Authorization": header}
    )

    assert_failure(response, 401, "InvalidAuthHeader")


@pytest.mark.parametrize(
    "make_token",
    [
        lambda fake: fake.token_for("agent", expires_in=-5),
        lambda fake: fake.token_for("agent", foreign_key=True),
        lambda fake: fake.token_for("agent", issuer="https://evil.example"),
        lambda fake: "not.a.jwt",
        lambda fake: fake.token_for("agent")[:-4] + "AAAA",
    ],
    ids=["expired", "foreign-key", "wrong-issuer", "garbage", "bad-signature"],
)
def test_unverifiable_token_is_unauthenticated(fake, http, make_token):
    response = get_meeting(http, fake, fake.meeting_id("planning"), make_token(fake))

    assert assert_failure(response, 401, "Unauthenticated")["message"] == UNAUTHENTICATED_MESSAGE


def test_other_api_path_is_not_found(fake, http, token):
    response = http.post(fake.url + "/api/run/meetings/queries/listUserMeetings", json={"args": {}})

    assert_failure(response, 404, "NotFound")


def test_wrong_method_is_not_allowed(fake, http):
    response = http.get(fake.url + GET_MEETING_PATH)

    assert_failure(response, 405, "MethodNotAllowed")
    assert response.headers["Allow"] == "POST"


def test_request_ids_are_fresh(fake, http):
    messages = {
        get_meeting(http, fake, fake.meeting_id("planning")).json()["errorMessage"]
        for _ in range(3)
    }

    assert len(messages) == 3


# -- ids and tokens --------------------------------------------------------------------------


def test_ids_look_like_convex_ids_and_are_seeded():
    first, again, other = FakeConnvo(seed=0), FakeConnvo(seed=0), FakeConnvo(seed=1)

    ids = [*first.meeting_labels.values(), *(user.id for user in first.users.values())]
    assert all(len(doc_id) == 32 and set(doc_id) <= set(ALPHABET) for doc_id in ids)
    assert {table_of(first.meeting_id("planning")), table_of(first.users_table_id())} == {
        "meetings",
        "users",
    }
    assert table_of(first.unknown_meeting_id()) == "meetings"
    assert first.meeting_labels == again.meeting_labels
    assert first.users["agent"].sub == again.users["agent"].sub
    assert first.meeting_labels["planning"] != other.meeting_labels["planning"]
    assert re.fullmatch(r"user_01[0-9A-Z]{24}", first.users["agent"].sub)
    assert len(first.meeting_labels) >= 6
    assert first.unprovisioned_sub not in {user.sub for user in first.users.values()}


def test_tokens_are_rs256_with_issuer_and_subject(fake):
    import jwt

    token = fake.token_for("bob", expires_in=60)

    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == fake.users["bob"].sub
    assert claims["iss"] == fake.issuer
    assert 55 <= claims["exp"] - claims["iat"] <= 60


# -- changing the world ----------------------------------------------------------------------


def test_update_meeting_sets_and_removes_fields(fake, http, token):
    fake.update_meeting("planning", state="active", averageRating=None, streamRoomId=DELETE)

    value = get_meeting(http, fake, fake.meeting_id("planning"), token).json()["value"]
    assert value["state"] == "active"
    assert "averageRating" not in value
    assert "streamRoomId" not in value
    with pytest.raises(ValueError, match="required"):
        fake.update_meeting("planning", title=None)
    with pytest.raises(ValueError, match="set_participant"):
        fake.update_meeting("planning", userRole="observer")


def test_participants_can_be_added_and_removed(fake, http, token):
    meeting_id = fake.meeting_id("private")
    fake.set_participant("private", "agent", role="observer", presence="joined")

    value = get_meeting(http, fake, meeting_id, token).json()["value"]
    assert (value["userRole"], value["userPresence"]) == ("observer", "joined")

    fake.remove_participant(meeting_id, fake.users["agent"].sub)
    assert get_meeting(http, fake, meeting_id, token).json()["errorData"]["code"] == "FORBIDDEN"


def test_live_metrics_drift_with_time():
    now = [1_760_000_000.0]
    fake = FakeConnvo(live_metrics=True, clock=lambda: now[0])
    standup = fake.meetings[fake.meeting_id("standup")].fields
    seen = set()
    with fake:
        token = fake.token_for("agent")
        with requests.Session() as http:
            http.trust_env = False
            for _ in range(12):
                value = get_meeting(http, fake, fake.meeting_id("standup"), token).json()["value"]
                seen.add((value["participantCount"], value["activeWebRTCSessions"]))
                assert value["activeWebRTCSessions"] <= value["participantCount"]
                now[0] += 30
    assert len(seen) > 1
    assert standup["updatedAt"] > 1_760_000_000_000


# -- misbehaviour ----------------------------------------------------------------------------


def wait_until(condition, what: str) -> None:
    """Wait for something the test needs before it goes on (a bound on waiting, not a check of
    speed: the condition is the behaviour)."""
    for _ in range(2000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"gave up waiting: {what}")


def start_stuck_call(fake, token) -> tuple[threading.Thread, list[BaseException]]:
    """A getMeeting that the fake holds (misbehave "slow", long delay), running in a thread."""
    errors: list[BaseException] = []

    def stuck_call() -> None:
        with requests.Session() as own:
            own.trust_env = False
            try:
                get_meeting(own, fake, fake.meeting_id("planning"), token)
            except requests.ConnectionError as error:
                errors.append(error)

    thread = threading.Thread(target=stuck_call)
    thread.start()
    wait_until(lambda: fake.calls and fake.calls[-1].status is None, "the slow call to arrive")
    return thread, errors


def test_slow_answers_late_without_blocking_others(fake, http, token):
    fake.misbehave("slow", delay=60, times=1)
    thread, _ = start_stuck_call(fake, token)

    assert get_meeting(http, fake, fake.meeting_id("planning"), token).status_code == 200

    held = [call for call in fake.calls if call.status is None]
    assert len(held) == 1 and thread.is_alive(), "the slow call was answered first"
    fake.down()
    thread.join(timeout=30)


def test_slow_does_not_hold_up_going_down(fake, token):
    fake.misbehave("slow", delay=60)
    thread, errors = start_stuck_call(fake, token)

    fake.down()
    thread.join(timeout=30)  # well short of the 60 s delay

    assert errors and not thread.is_alive()


def test_trickle_writes_the_whole_answer_a_byte_at_a_time_headers_too(fake, token):
    """A raw client sees the status line come a byte at a time (so a read timeout per read never
    fires), and the answer, once whole, is the one Connvo gives without the switch."""
    fake.misbehave("trickle", delay=0.002, times=1)
    body = f'{{"args": {{"meetingId": "{fake.meeting_id("planning")}"}}}}'.encode()
    request = (
        f"POST {GET_MEETING_PATH} HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as raw:
        raw.sendall(request)
        reads = [raw.recv(4096) for _ in range(3)]  # each read gets what has come: a byte or so
        received = b"".join(reads)
        while chunk := raw.recv(4096):
            received += chunk

    assert all(len(read) < 10 for read in reads)  # not the head at once (about 150 bytes)
    head, _, answer = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: " + str(len(answer)).encode() in head
    assert json.loads(answer)["value"]["title"] == "Q3 Product Roadmap Planning"


def test_trickle_needs_a_delay(fake):
    with pytest.raises(ValueError, match="trickle needs delay"):
        fake.misbehave("trickle")


def test_reset_drops_the_connection(fake, http, token):
    fake.misbehave("reset", times=1)

    with pytest.raises(requests.ConnectionError):
        get_meeting(http, fake, fake.meeting_id("planning"), token)
    assert get_meeting(http, fake, fake.meeting_id("planning"), token).status_code == 200
    assert [call.status for call in fake.calls] == [None, 200]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "BadRequest"),
        (401, "Unauthenticated"),
        (403, "Forbidden"),
        (404, "NotFound"),
        (408, "RequestTimeout"),
        (429, "RateLimited"),
        (500, "InternalServerError"),
        (503, "Overloaded"),
    ],
)
def test_status_failures_then_recovery(fake, http, token, status, code):
    fake.misbehave("status", status=status, times=2)
    meeting_id = fake.meeting_id("planning")

    assert_failure(get_meeting(http, fake, meeting_id, token), status, code)
    assert_failure(get_meeting(http, fake, meeting_id, token), status, code)
    assert get_meeting(http, fake, meeting_id, token).json()["status"] == "success"


def test_overloaded_shorthand(fake, http, token):
    fake.misbehave("overloaded", times=1, retry_after=2)

    response = get_meeting(http, fake, fake.meeting_id("planning"), token)
    assert_failure(response, 503, "Overloaded")
    assert response.headers["Retry-After"] == "2"
    assert get_meeting(http, fake, fake.meeting_id("planning"), token).status_code == 200


def test_garbage_and_proxy_errors_are_html(fake, http, token):
    fake.misbehave("garbage", times=1)
    response = get_meeting(http, fake, fake.meeting_id("planning"), token)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()

    fake.misbehave("proxy_error", times=1)
    response = get_meeting(http, fake, fake.meeting_id("planning"), token)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")


def test_schema_drift_changes_or_drops_fields(fake, http, token):
    fake.misbehave("schema_drift", field="state", value="archived")
    fake.misbehave("schema_drift", field="title", drop=True)
    fake.misbehave("schema_drift", field="participantCount", value="five")

    value = get_meeting(http, fake, fake.meeting_id("planning"), token).json()["value"]

    assert value["state"] == "archived"
    assert "title" not in value
    assert value["participantCount"] == "five"
    assert fake.meetings[fake.meeting_id("planning")].fields["state"] == "scheduled"


def test_expired_tokens_switch(fake, http, token):
    fake.misbehave("expired_tokens")

    response = get_meeting(http, fake, fake.meeting_id("planning"), token)

    assert assert_failure(response, 401, "Unauthenticated")["message"] == UNAUTHENTICATED_MESSAGE


def test_redact_hides_system_errors_but_keeps_convex_errors(fake, http, token):
    fake.misbehave("redact")

    body = get_meeting(http, fake, "not-an-id", token).json()
    assert ERROR_PREFIX.fullmatch(body["errorMessage"])
    assert "errorData" not in body

    assert_convex_error(
        get_meeting(http, fake, fake.meeting_id("private"), token),
        "FORBIDDEN",
        "Access denied: Not a meeting participant",
        403,
    )


def test_status_560_combines_with_redact(fake, http, token):
    fake.misbehave("status_560")
    fake.misbehave("redact")

    success = get_meeting(http, fake, fake.meeting_id("planning"), token)
    invalid = get_meeting(http, fake, "nope", token)
    request_error = get_meeting(http, fake, "nope", "not.a.jwt")

    assert success.status_code == 560
    assert success.json()["status"] == "success"
    assert invalid.status_code == 560
    assert ERROR_PREFIX.fullmatch(invalid.json()["errorMessage"])
    assert request_error.status_code == 401


def test_unknown_misbehaviour_is_refused(fake):
    with pytest.raises(ValueError, match="unknown misbehaviour"):
        fake.misbehave("flaky")
    with pytest.raises(ValueError, match="no option"):
        fake.misbehave("reset", delay=1)


# -- lifecycle and call log ------------------------------------------------------------------


def test_down_refuses_connections_and_up_serves_on_the_same_port(fake, http, token):
    port = fake.port
    meeting_id = fake.meeting_id("planning")
    assert get_meeting(http, fake, meeting_id, token).status_code == 200  # keep-alive pooled

    fake.down()
    with pytest.raises(requests.ConnectionError):
        get_meeting(http, fake, meeting_id, token)

    fake.up()
    assert fake.port == port
    assert get_meeting(http, fake, meeting_id, token).status_code == 200


def test_calls_are_recorded_and_counted(fake, http, token):
    get_meeting(http, fake, fake.meeting_id("planning"), token)
    fake.misbehave("overloaded", times=1)
    get_meeting(http, fake, fake.meeting_id("planning"), token)
    http.get(fake.url + "/_fake/world")

    assert fake.call_count == 2
    first, second = fake.calls
    assert (first.method, first.path, first.status, second.status) == (
        "POST",
        GET_MEETING_PATH,
        200,
        503,
    )
    assert first.headers["authorization"] == f"Bearer {token}"
    assert first.headers["convex-client"] == "console-0.1.0"
    assert first.json == {"args": {"meetingId": fake.meeting_id("planning")}, "format": "json"}
    assert first.response_json()["status"] == "success"
    assert re.fullmatch(r"[0-9a-f]{16}", first.request_id)

    fake.clear_calls()
    assert (fake.call_count, fake.calls) == (0, [])


def test_control_endpoints_drive_the_fake_from_outside(fake, http):
    world = http.get(fake.url + "/_fake/world").json()
    assert world["meetings"]["planning"] == fake.meeting_id("planning")
    assert world["users"]["agent"]["sub"] == fake.users["agent"].sub

    token = http.post(fake.url + "/_fake/tokens", json={"user": "agent"}).json()["token"]
    meeting_id = world["meetings"]["standup"]
    assert get_meeting(http, fake, meeting_id, token).json()["value"]["title"]

    updated = http.post(f"{fake.url}/_fake/meetings/{meeting_id}", json={"title": "Renamed"})
    assert updated.status_code == 200
    assert get_meeting(http, fake, meeting_id, token).json()["value"]["title"] == "Renamed"

    http.post(fake.url + "/_fake/misbehave", json={"kind": "overloaded", "times": 1})
    assert get_meeting(http, fake, meeting_id, token).status_code == 503
    http.post(fake.url + "/_fake/misbehave", json={"kind": "status", "status": 500})
    http.post(fake.url + "/_fake/reset")
    assert get_meeting(http, fake, meeting_id, token).status_code == 200

    log = http.get(fake.url + "/_fake/calls").json()
    assert log["callCount"] == 4
    assert [call["status"] for call in log["calls"]] == [200, 200, 503, 200]
    assert http.post(fake.url + "/_fake/misbehave", json={"kind": "nope"}).status_code == 400
