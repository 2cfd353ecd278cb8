"""The fake Connvo speaks Convex's sync protocol: the official `convex` client subscribes to
getMeeting through it and gets changes pushed; raw WebSocket clients see its failure switches.

The official client runs against a fake in another process (`python -m fakeconnvo`), driven
through `/_fake/`: its blocking calls (`subscribe`, `query`, `next`) hold the GIL while they wait
for the network, so a fake in the same process could not answer them. Its waits here use the
async iterator, which lets go. Raw clients (websockets' own) run against a fake in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from convex import ConvexClient, ConvexError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fakeconnvo import UNAUTHENTICATED_MESSAGE, FakeConnvo
from fakeconnvo.behaviour import make_switch
from fakeconnvo.process import FakeProcess
from fakeconnvo.sync import (
    INVALID_JSON_PREFIX,
    TOKEN_EXPIRED_MESSAGE,
    AddQuery,
    Answer,
    Authenticate,
    Connect,
    EndSession,
    ModifyQuerySet,
    ProtocolError,
    RemoveQuery,
    SyncSession,
    canonical_udf_path,
    decode_u64,
    encode_u64,
    parse_client_message,
)
from tests.conftest import run_async

ROOT = Path(__file__).resolve().parent.parent
GET_MEETING = "meetings/queries:getMeeting"
WAIT = 10  # seconds any one answer may take before the test gives up (not a timing assertion)


def until(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` if it never does."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.02)
    pytest.fail(f"never saw {what}")


# -- the official client, against a fake in another process -----------------------------------


class Served(FakeProcess):
    """`python -m fakeconnvo` on a free port, driven over /_fake/."""

    def __init__(self) -> None:
        super().__init__(timeout=WAIT)
        self.world = self.control("GET", "world")

    def get_meeting(self, token: str, meeting_id: str) -> dict[str, Any]:
        response = self.http.post(
            f"{self.url}/api/run/meetings/queries/getMeeting",
            json={"args": {"meetingId": meeting_id}, "format": "json"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=WAIT,
        )
        return response.json()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    running = Served()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def official(served: Served) -> Iterator[Served]:
    served.control("POST", "reset", {"calls": True, "world": True})
    yield served
    # The test's client goes with its locals (a raised error's traceback holds them in a cycle,
    # hence the collection): dropped now, its connection cannot come back and count in the next.
    gc.collect()
    served.control("POST", "sync/drop")


def next_answer(subscription: Any) -> Any:
    async def wait() -> Any:
        return await asyncio.wait_for(subscription.__anext__(), WAIT)

    return run_async(wait())


def test_official_client_gets_the_http_answer_then_a_pushed_change(official):
    meeting_id = official.world["meetings"]["planning"]
    token = official.token("agent")
    client = ConvexClient(official.url)
    client.set_auth(token)
    subscription = client.subscribe(GET_MEETING, {"meetingId": meeting_id})

    first = next_answer(subscription)
    # Numbers arrive as floats (Convex's float64), which compare equal to the HTTP JSON's ints.
    assert first == official.get_meeting(token, meeting_id)["value"]
    assert first["participantCount"] == 4

    official.control("POST", "meetings/planning", {"participantCount": 12, "state": "active"})
    pushed = next_answer(subscription)
    assert (pushed["participantCount"], pushed["state"]) == (12, "active")
    assert pushed == official.get_meeting(token, meeting_id)["value"]

    sync = official.control("GET", "sync")
    assert (sync["answersSent"], sync["answersPushed"]) == (2, 1)
    [connection] = sync["connections"]
    assert connection["client"].startswith("python-")
    assert connection["user"] == official.world["users"]["agent"]["sub"]
    [counted] = connection["subscriptions"]
    assert (counted["args"], counted["answers"], counted["pushed"]) == (
        [{"meetingId": meeting_id}],
        2,
        1,
    )


def test_official_client_gets_the_http_convex_error_and_its_data(official):
    meeting_id = official.world["meetings"]["private"]
    token = official.token("agent")
    client = ConvexClient(official.url)
    client.set_auth(token)
    subscription = client.subscribe(GET_MEETING, {"meetingId": meeting_id})

    with pytest.raises(ConvexError) as raised:
        next_answer(subscription)
    http = official.get_meeting(token, meeting_id)
    assert raised.value.data == http["errorData"]
    assert raised.value.data["code"] == "FORBIDDEN"
    # Same text but for the request id.
    assert str(raised.value).split("\n")[1:] == http["errorMessage"].split("\n")[1:]


def test_official_client_with_a_refused_token_gets_auth_errors_and_no_answer(official):
    meeting_id = official.world["meetings"]["planning"]
    client = ConvexClient(official.url)
    client.set_auth(official.token("agent", foreign_key=True))
    client.subscribe(GET_MEETING, {"meetingId": meeting_id})

    def refusals() -> list[dict[str, Any]]:
        connections = official.control("GET", "sync")["connections"]
        return [c for c in connections if c["authErrors"]]

    refused = until(refusals, "an AuthError")
    assert refused[0]["closeReason"] == f"AuthError: {UNAUTHENTICATED_MESSAGE}"
    assert refused[0]["user"] is None
    assert all(s["answers"] == 0 for c in refused for s in c["subscriptions"])
    assert official.control("GET", "sync")["answersSent"] == 0


# -- raw clients, against a fake in this process -----------------------------------------------


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeConnvo]:
    with FakeConnvo(seed=0) as running:
        yield running


@pytest.fixture
def fake(module_fake: FakeConnvo) -> Iterator[FakeConnvo]:
    module_fake.reset_behaviour()
    module_fake.reset_world()
    module_fake.clear_calls()
    module_fake.clear_sync_log()
    yield module_fake
    module_fake.drop_sync_connections()
    module_fake.sync_heartbeat = 15.0


def raw(fake: FakeConnvo, path: str = "/api/sync") -> ClientConnection:
    url = fake.url.replace("http://", "ws://") + path
    return connect(url, additional_headers={"Convex-Client": "raw-1.0.0"}, open_timeout=WAIT)


def hello(ws: ClientConnection, token: str | None, *meeting_ids: str) -> None:
    """What a client says first: Connect, Authenticate (if a token), its queries."""
    ws.send(
        json.dumps(
            {
                "type": "Connect",
                "sessionId": str(uuid.uuid4()),
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
                "clientTs": 0,
            }
        )
    )
    if token is not None:
        ws.send(
            json.dumps(
                {"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0}
            )
        )
    if meeting_ids:
        ws.send(json.dumps(add_queries(0, 1, *meeting_ids)))


def add_queries(base: int, new: int, *meeting_ids: str, first_id: int = 0) -> dict[str, Any]:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": new,
        "modifications": [
            {
                "type": "Add",
                "queryId": first_id + n,
                "udfPath": GET_MEETING,
                "args": [{"meetingId": m}],
            }
            for n, m in enumerate(meeting_ids)
        ],
    }


def receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=WAIT))


def answers_of(transition: dict[str, Any]) -> dict[int, dict[str, Any]]:
    assert transition["type"] == "Transition", transition
    return {m["queryId"]: m for m in transition["modifications"]}


def http_value(fake: FakeConnvo, user: str, meeting_id: str) -> Any:
    response = requests.post(
        fake.url + "/api/run/meetings/queries/getMeeting",
        json={"args": {"meetingId": meeting_id}, "format": "json"},
        headers={"Authorization": f"Bearer {fake.token_for(user)}"},
        timeout=WAIT,
    )
    return response.json()


def test_transitions_chain_their_versions_and_carry_the_http_value(fake):
    meeting_id = fake.meeting_id("standup")
    with raw(fake) as ws:
        hello(ws, fake.token_for("alice"), meeting_id)
        authenticated, subscribed = receive(ws), receive(ws)
        fake.update_meeting("standup", activeWebRTCSessions=5)
        pushed = receive(ws)
    assert authenticated["startVersion"] == {"querySet": 0, "identity": 0, "ts": encode_u64(0)}
    assert authenticated["endVersion"]["identity"] == 1
    assert authenticated["modifications"] == []
    assert subscribed["startVersion"] == authenticated["endVersion"]
    assert subscribed["endVersion"]["querySet"] == 1
    assert pushed["startVersion"] == subscribed["endVersion"]
    assert decode_u64(pushed["endVersion"]["ts"]) > decode_u64(subscribed["endVersion"]["ts"])
    assert answers_of(subscribed)[0]["value"]["activeWebRTCSessions"] == 3
    update = answers_of(pushed)[0]
    assert update["type"] == "QueryUpdated"
    assert update["value"] == http_value(fake, "alice", meeting_id)["value"]
    assert update["value"]["activeWebRTCSessions"] == 5


def test_a_change_is_pushed_only_where_the_answer_changed(fake):
    planning, standup = fake.meeting_id("planning"), fake.meeting_id("standup")
    with raw(fake) as watching_planning, raw(fake) as watching_standup:
        hello(watching_planning, fake.token_for("agent"), planning)
        hello(watching_standup, fake.token_for("agent"), standup)
        for ws in (watching_planning, watching_standup):
            receive(ws), receive(ws)
        fake.update_meeting("planning", title="Q3 Roadmap (moved)")
        # Pushes are sent before update_meeting returns.
        connections = {
            c["subscriptions"][0]["args"][0]["meetingId"]: c for c in fake.sync_connections
        }
        assert receive(watching_planning)["modifications"][0]["value"]["title"] == (
            "Q3 Roadmap (moved)"
        )
    assert connections[planning]["subscriptions"][0]["pushed"] == 1
    assert connections[standup]["subscriptions"][0]["pushed"] == 0
    assert (fake.answers_sent, fake.answers_pushed) == (3, 1)


def test_losing_a_participant_pushes_the_http_convex_error(fake):
    meeting_id = fake.meeting_id("planning")
    with raw(fake) as ws:
        hello(ws, fake.token_for("bob"), meeting_id)
        receive(ws), receive(ws)
        fake.remove_participant("planning", "bob")
        failed = answers_of(receive(ws))[0]
    http = http_value(fake, "bob", meeting_id)
    assert failed["type"] == "QueryFailed"
    assert failed["errorData"] == http["errorData"]
    assert failed["errorMessage"].split("\n")[1:] == http["errorMessage"].split("\n")[1:]


def test_no_token_runs_the_query_as_nobody(fake):
    with raw(fake) as ws:
        hello(ws, None, fake.meeting_id("planning"))
        failed = answers_of(receive(ws))[0]
    assert failed["errorData"]["code"] == "UNAUTHORIZED"


def test_removing_a_query_answers_query_removed(fake):
    with raw(fake) as ws:
        hello(ws, fake.token_for("agent"), fake.meeting_id("planning"))
        receive(ws), receive(ws)
        ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 1,
                    "newVersion": 2,
                    "modifications": [{"type": "Remove", "queryId": 0}],
                }
            )
        )
        removed = receive(ws)
    assert removed["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]
    assert removed["endVersion"]["querySet"] == 2


def test_another_function_is_not_found(fake):
    with raw(fake) as ws:
        hello(ws, fake.token_for("agent"))
        receive(ws)
        ws.send(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": 0,
                    "newVersion": 1,
                    "modifications": [
                        {
                            "type": "Add",
                            "queryId": 7,
                            "udfPath": "meetings/queries:list",
                            "args": [{}],
                        }
                    ],
                }
            )
        )
        failed = answers_of(receive(ws))[7]
    assert "Could not find public function for 'meetings/queries:list'" in failed["errorMessage"]


def test_refused_token_gets_auth_error_and_the_connection_closes(fake):
    with raw(fake) as ws:
        # No queries: they could meet a closed connection.
        hello(ws, fake.token_for("agent", expires_in=-60))
        error = receive(ws)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=WAIT)
    assert error == {
        "type": "AuthError",
        "error": UNAUTHENTICATED_MESSAGE,
        "baseVersion": 0,
        "authUpdateAttempted": True,
    }
    [connection] = until(
        lambda: [c for c in fake.sync_connections if not c["open"]], "the connection closed"
    )
    assert connection["authErrors"] == 1


def test_identity_expiring_while_subscribed_ends_in_auth_error():
    now = [time.time()]
    with FakeConnvo(seed=0, clock=lambda: now[0]) as fake, raw(fake) as ws:
        hello(ws, fake.token_for("agent", expires_in=600), fake.meeting_id("planning"))
        receive(ws), receive(ws)
        now[0] += 3600
        fake.update_meeting("planning", participantCount=5)
        error = receive(ws)
    assert error["type"] == "AuthError"
    assert error["error"] == TOKEN_EXPIRED_MESSAGE
    assert (error["baseVersion"], error["authUpdateAttempted"]) == (1, False)


def test_protocol_violations_end_in_fatal_error(fake):
    with raw(fake) as ws:
        hello(ws, None)
        ws.send(json.dumps(add_queries(3, 4, fake.meeting_id("planning"))))
        fatal = receive(ws)
    assert fatal == {
        "type": "FatalError",
        "error": "Base version 3 passed up doesn't match the current version 0",
    }
    with raw(fake) as ws:
        ws.send("{not json")
        fatal = receive(ws)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=WAIT)
    assert fatal["error"].startswith(INVALID_JSON_PREFIX)


def test_versioned_path_of_convex_js_is_served_too(fake):
    with raw(fake, "/api/1.45.0/sync") as ws:
        hello(ws, fake.token_for("agent"), fake.meeting_id("planning"))
        assert receive(ws)["type"] == "Transition"


def test_idle_connection_gets_heartbeat_pings(fake):
    fake.sync_heartbeat = 0.05
    with raw(fake) as ws:
        hello(ws, None)
        assert receive(ws)["type"] == "Ping"


def test_upgrade_is_logged_without_the_token(fake, caplog):
    caplog.set_level(logging.DEBUG)
    token = fake.token_for("agent")
    with raw(fake) as ws:
        hello(ws, token, fake.meeting_id("planning"))
        receive(ws), receive(ws)
    # Not even the frame that carried it, at DEBUG, on the fake's side: websockets would log
    # its start and end there ('{"type": "Authenticate", "tokenType": "User", "...zoQ"').
    server_side = [r.getMessage() for r in caplog.records if r.name != "websockets.client"]
    assert any("Authenticate(User" in message for message in server_side)
    assert not any("tokenType" in message or token[-12:] in message for message in server_side)
    [call] = fake.calls
    assert (call.method, call.path, call.status) == ("GET", "/api/sync", 101)
    assert token not in json.dumps(fake.sync_connections)
    assert token not in json.dumps([c.describe() for c in fake.calls])


def test_control_endpoints_report_clear_and_drop_sync_connections(fake):
    with raw(fake) as ws:
        hello(ws, fake.token_for("agent"), fake.meeting_id("planning"))
        receive(ws), receive(ws)
        state = requests.get(fake.url + "/_fake/sync", timeout=WAIT).json()
        assert state["syncUrl"] == fake.sync_url
        assert (state["answersSent"], len(state["connections"])) == (1, 1)
        dropped = requests.post(fake.url + "/_fake/sync/drop", timeout=WAIT).json()
        assert dropped == {"dropped": 1}
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=WAIT)
    cleared = requests.delete(fake.url + "/_fake/sync", timeout=WAIT).json()
    assert (cleared["answersSent"], cleared["connections"]) == (0, [])


# -- the switches, as a raw client sees them ---------------------------------------------------


def test_sync_refuse_answers_the_upgrade_with_an_http_error(fake):
    fake.misbehave("sync_refuse", status=502, times=1)
    with pytest.raises(InvalidStatus) as refused:
        raw(fake)
    assert refused.value.response.status_code == 502
    assert json.loads(refused.value.response.body)["code"] == "BadGateway"
    with raw(fake) as ws:  # used up
        hello(ws, None)
    assert fake.calls[0].status == 502


def test_sync_silent_accepts_and_never_sends(fake):
    fake.misbehave("sync_silent", times=1)
    fake.sync_heartbeat = 0.05
    with raw(fake) as ws:
        hello(ws, fake.token_for("agent"), fake.meeting_id("planning"))
        until(
            lambda: [c for c in fake.sync_connections if c["messagesIn"] == 3],
            "the messages arrive",
        )
        fake.update_meeting("planning", participantCount=6)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
    [connection] = fake.sync_connections
    assert (connection["silent"], connection["messagesOut"]) == (True, 0)
    assert connection["subscriptions"][0]["answers"] == 0


def test_sync_drop_resets_instead_of_the_next_message(fake):
    fake.misbehave("sync_drop", times=1)
    with raw(fake) as ws, pytest.raises(ConnectionClosed) as closed:
        # The reset may come while the client is still sending.
        hello(ws, fake.token_for("agent"), fake.meeting_id("planning"))
        ws.recv(timeout=WAIT)
    assert closed.value.rcvd is None  # no close frame: the TCP connection just went
    assert fake.sync_connections[0]["closeReason"] == "sync_drop"


def test_sync_garbage_sends_a_frame_that_is_not_json(fake):
    fake.misbehave("sync_garbage", times=1)
    with raw(fake) as ws:
        hello(ws, fake.token_for("agent"), fake.meeting_id("planning"))
        garbage = ws.recv(timeout=WAIT)
        with pytest.raises(ValueError):
            json.loads(garbage)
        assert receive(ws)["type"] == "Transition"  # the next one is whole again


def test_sync_reject_token_refuses_a_good_token(fake):
    fake.misbehave("sync_reject_token")
    with raw(fake) as ws:
        hello(ws, fake.token_for("agent"))
        assert receive(ws)["error"] == UNAUTHENTICATED_MESSAGE
    # The HTTP API still takes it: the switch is the WebSocket's alone.
    assert http_value(fake, "agent", fake.meeting_id("planning"))["status"] == "success"


def test_sync_switches_are_checked_like_the_others():
    with pytest.raises(ValueError, match="sync_refuse needs status"):
        make_switch("sync_refuse", {"status": 200})
    with pytest.raises(ValueError, match="takes no option"):
        make_switch("sync_drop", {"delay": 1})
    assert make_switch("sync_refuse", {}).options == {"status": 503}


# -- what the fake parses from clients, by property ----------------------------------------------

u32 = st.integers(0, 2**32 - 1)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
udf_paths = st.sampled_from(
    [GET_MEETING, "meetings/queries.js:getMeeting", "meetings/queries", "a/b:c_1"]
)
adds = st.builds(
    lambda query_id, path, args: {
        "type": "Add",
        "queryId": query_id,
        "udfPath": path,
        "args": args,
    },
    u32,
    udf_paths,
    st.lists(json_values, max_size=2),
)
removes = st.builds(lambda query_id: {"type": "Remove", "queryId": query_id}, u32)
messages = st.one_of(
    st.builds(
        lambda session, count, reason, observed, client_ts: {
            "type": "Connect",
            "sessionId": str(session),
            "connectionCount": count,
            "lastCloseReason": reason,
            "maxObservedTimestamp": None if observed is None else encode_u64(observed),
            "clientTs": client_ts,
        },
        st.uuids(),
        u32,
        st.none() | st.text(),
        st.none() | st.integers(0, 2**63 - 1),
        st.none() | st.integers(-(2**63), 2**63 - 1),
    ),
    st.builds(
        lambda base, new, mods: {
            "type": "ModifyQuerySet",
            "baseVersion": base,
            "newVersion": new,
            "modifications": mods,
        },
        u32,
        u32,
        st.lists(adds | removes, max_size=4),
    ),
    st.builds(
        lambda kind, base, value: (
            {"type": "Authenticate", "tokenType": kind, "baseVersion": base}
            | ({} if kind == "None" else {"value": value})
        ),
        st.sampled_from(["User", "Admin", "None"]),
        u32,
        st.text(),
    ),
    st.builds(
        lambda kind, event: {"type": "Event", "eventType": kind, "event": event},
        st.text(),
        json_values,
    ),
)


@given(st.text())
def test_any_text_parses_or_is_a_protocol_error(text):
    try:
        parse_client_message(text)
    except ProtocolError as error:
        assert str(error).startswith(INVALID_JSON_PREFIX)


@given(json_values)
def test_any_json_parses_or_is_a_protocol_error(value):
    with contextlib.suppress(ProtocolError):
        parse_client_message(json.dumps(value))


@given(messages)
def test_well_formed_messages_parse_to_what_they_say(message):
    parsed = parse_client_message(json.dumps(message))
    match parsed:
        case Connect():
            assert parsed.session_id == message["sessionId"]
            assert parsed.connection_count == message["connectionCount"]
            observed = message["maxObservedTimestamp"]
            assert parsed.max_observed_timestamp == (
                None if observed is None else decode_u64(observed)
            )
        case ModifyQuerySet():
            assert (parsed.base_version, parsed.new_version) == (
                message["baseVersion"],
                message["newVersion"],
            )
            for got, sent in zip(parsed.modifications, message["modifications"], strict=True):
                assert got.query_id == sent["queryId"]
                if isinstance(got, AddQuery):
                    assert (got.udf_path, got.args) == (sent["udfPath"], sent["args"])
                else:
                    assert isinstance(got, RemoveQuery)
        case Authenticate():
            assert parsed.token_type == message["tokenType"]
            assert parsed.value == message.get("value")
        case _:
            assert parsed.event_type == message["eventType"]


@given(
    messages, st.sampled_from(["sessionId", "baseVersion", "connectionCount", "type"]), json_values
)
def test_a_field_of_the_wrong_kind_is_a_protocol_error_not_a_crash(message, key, value):
    with contextlib.suppress(ProtocolError):
        parse_client_message(json.dumps({**message, key: value}))


def test_a_parsed_token_is_never_printed():
    token = "eyJhbGciOiJSUzI1NiJ9.secret.signature"
    parsed = parse_client_message(
        json.dumps({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0})
    )
    assert token not in repr(parsed)
    assert token not in str(parsed)


@given(st.integers(0, 2**63 - 1))
def test_timestamps_round_trip_as_base64_of_8_little_endian_bytes(number):
    assert decode_u64(encode_u64(number)) == number
    assert len(encode_u64(number)) == 12


@given(udf_paths)
def test_canonical_paths_are_canonical(path):
    canonical = canonical_udf_path(path)
    assert canonical_udf_path(canonical) == canonical
    assert canonical.split(":")[0].endswith(".js")


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(st.lists(messages, max_size=8), st.lists(st.booleans(), max_size=8))
def test_any_message_sequence_keeps_transitions_chained_or_ends_the_session(sequence, changes):
    """Whatever a client sends, a session answers with Transitions whose versions chain, or ends
    with AuthError/FatalError; it never fails otherwise."""
    ts = [1]

    def run(identity, path, args):
        return Answer(value={"path": path, "args": args, "ts": ts[0] // 2})

    def verify(token):
        if token == "good":
            return {"sub": "user_1", "exp": time.time() + 60}
        raise ValueError(UNAUTHENTICATED_MESSAGE)

    session = SyncSession(verify=verify, run=run, timestamp=lambda: ts[0], clock=time.time)
    last_end = {"querySet": 0, "identity": 0, "ts": encode_u64(0)}
    try:
        for message, change in zip(sequence, changes + [False] * len(sequence), strict=False):
            answers = session.handle(parse_client_message(json.dumps(message)))
            if change:
                ts[0] += 1
                answers += session.refresh()
            for answer in answers:
                if answer["type"] == "Transition":
                    assert answer["startVersion"] == last_end
                    last_end = answer["endVersion"]
    except EndSession as ending:
        assert ending.message["type"] in ("AuthError", "FatalError")
