"""meetings/sync.py, the console's client of Convex's sync protocol, against the fake Connvo over
real loopback: the same typed results as the HTTP path, pushed changes, each failure switch, re-
authentication, one WebSocket per agent, and anything a server may send.

The fake runs in this process (a thread of its own, the `fake_connvo` fixture); each test drives
the client with `asyncio.run` in a thread of its own (`run_async`). Waits are bounded (WAIT) but
nothing here asserts a duration.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from connvo_admin.outcomes import LookupFailed
from meetings import connvo, sync
from meetings.credentials import read_claims
from meetings.deployments import Deployment, get_deployment
from meetings.sync import PushUnavailable
from tests.conftest import run_async

WAIT = 10  # seconds any one step may take before the test gives up (not a timing assertion)


@pytest.fixture(autouse=True)
def quick(settings):
    """A silence limit a test can wait through."""
    settings.CONNVO_SYNC_SILENCE_TIMEOUT = 1.0
    sync.reset_figures()


@pytest.fixture
def fake(fake_connvo):
    """The fake Connvo, with a heartbeat well inside the silence limit."""
    fake_connvo.sync_heartbeat = 0.2
    return fake_connvo


def run(coroutine: Any) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(WAIT):
            return await coroutine

    return run_async(bounded())


def tokens(*values: str) -> tuple[Callable[[], Any], list[str]]:
    """token() giving `values` in turn (the last one from then on), and the list of those given."""
    given_out: list[str] = []

    async def token() -> str:
        value = values[min(len(given_out), len(values) - 1)]
        given_out.append(value)
        return value

    return token, given_out


def dev() -> Deployment:
    return get_deployment("dev")


def watching(fake, meeting: str, user: str = "agent", **options: Any) -> AsyncIterator[Any]:
    token = options.pop("token", None)
    if token is None:
        token, _ = tokens(fake.token_for(user))
    return sync.watch(
        deployment=dev(),
        token=token,
        meeting_id=fake.meeting_id(meeting),
        user_key=options.pop("user_key", user),
    )


async def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.02)
    pytest.fail(f"never saw {what}")


async def change(fake, meeting: str, **fields: Any) -> None:
    await asyncio.to_thread(fake.update_meeting, meeting, **fields)


# -- the same answers as the HTTP path -----------------------------------------------------------


@pytest.mark.parametrize("meeting", ["planning", "standup", "minimal", "cancelled"])
def test_first_answer_is_the_http_lookups_meeting(fake, meeting):
    token = fake.token_for("agent")
    over_http = connvo.get_meeting(
        deployment=dev(), token=token, meeting_id=fake.meeting_id(meeting)
    )

    async def first() -> Any:
        async for result in watching(fake, meeting, token=tokens(token)[0]):
            return result

    pushed = run(first())
    assert isinstance(pushed, connvo.Lookup)
    assert pushed.meeting == over_http.meeting
    assert pushed.meeting.raw == over_http.meeting.raw
    assert pushed.deployment == over_http.deployment
    assert pushed.http_status is None
    assert pushed.attempts == 1


def refused_alike(fake, token: str, meeting_id: str, expected: type[LookupFailed]) -> None:
    """HTTP and push refuse this lookup with the same exception type, message and detail, and
    the watch ends there (a refusal that stops polling stops listening too)."""
    with pytest.raises(expected) as over_http:
        connvo.get_meeting(deployment=dev(), token=token, meeting_id=meeting_id)

    async def everything() -> list[Any]:
        stream = sync.watch(
            deployment=dev(), token=tokens(token)[0], meeting_id=meeting_id, user_key="agent"
        )
        return [result async for result in stream]

    (pushed,) = run(everything())
    assert type(pushed) is expected
    assert pushed.message == over_http.value.message
    assert pushed.detail == over_http.value.detail


def test_a_meeting_the_agent_is_not_in_is_not_visible_as_over_http(fake):
    token = fake.token_for("agent")
    refused_alike(fake, token, fake.meeting_id("private"), connvo.MeetingNotVisible)


def test_an_unknown_meeting_is_not_found_as_over_http(fake):
    token = fake.token_for("agent")
    refused_alike(fake, token, fake.unknown_meeting_id(), connvo.MeetingNotFound)


def test_a_user_connvo_does_not_know_is_not_provisioned_as_over_http(fake):
    token = fake.issue_token(fake.unprovisioned_sub)
    refused_alike(fake, token, fake.meeting_id("planning"), connvo.NotProvisioned)


def test_an_expired_token_is_rejected_with_the_http_paths_words(fake):
    token = fake.token_for("agent", expires_in=-60)
    meeting_id = fake.meeting_id("planning")
    with pytest.raises(connvo.TokenRejected) as over_http:
        connvo.get_meeting(deployment=dev(), token=token, meeting_id=meeting_id)
    token_source, given_out = tokens(token)

    async def everything() -> list[Any]:
        stream = sync.watch(
            deployment=dev(), token=token_source, meeting_id=meeting_id, user_key="agent"
        )
        return [result async for result in stream]

    (pushed,) = run(everything())
    assert type(pushed) is connvo.TokenRejected
    assert pushed.message == over_http.value.message
    assert pushed.detail.startswith("AuthError: ")
    # Asked once more after the refusal; the same token is not sent again.
    assert given_out == [token, token]
    assert len(fake.sync_connections) == 1


# -- pushed changes ------------------------------------------------------------------------------


def test_a_change_is_pushed_and_counted_as_the_fake_sent_it(fake):
    async def scenario() -> list[Any]:
        results = []
        async for result in watching(fake, "standup"):
            results.append(result)
            if len(results) == 1:
                await change(fake, "standup", participantCount=12)
            elif len(results) == 2:
                await change(fake, "standup", title="Stand-up, moved")
            else:
                break
        return results

    first, second, third = run(scenario())
    assert first.meeting.participant_count != 12
    assert second.meeting.participant_count == 12
    assert third.meeting.title == "Stand-up, moved"
    # A pushed answer cost no call of its own.
    assert (first.attempts, second.attempts, third.attempts) == (1, 0, 0)
    assert sync.figures().answers_received == fake.answers_sent == 3
    assert fake.answers_pushed == 2


def test_a_concluded_meeting_ends_the_watch_as_polling_stops(fake):
    async def scenario() -> list[Any]:
        results = []
        async for result in watching(fake, "standup"):
            results.append(result)
            if len(results) == 1:
                await change(fake, "standup", state="concluded")
        return results

    first, last = run(scenario())
    assert first.meeting.is_live
    assert last.meeting.state == connvo.MeetingState.CONCLUDED
    # The subscription went with the watch, and the connection with its last subscription. The
    # client has closed its side when the watch ends; the fake sees the close a moment later.
    assert sync.figures().connections_open == 0
    run(until(lambda: not fake.sync_connections[0]["open"], "the fake see the socket closed"))
    assert len(fake.sync_connections) == 1


def test_being_removed_from_a_meeting_is_pushed_as_not_visible(fake):
    async def scenario() -> list[Any]:
        results = []
        async for result in watching(fake, "standup"):
            results.append(result)
            if len(results) == 1:
                await asyncio.to_thread(fake.remove_participant, "standup", "agent")
        return results

    first, last = run(scenario())
    assert isinstance(first, connvo.Lookup)
    assert type(last) is connvo.MeetingNotVisible


# -- one WebSocket per agent and deployment ------------------------------------------------------


def subscriptions(fake, user: str) -> list[str]:
    """The meetings an open connection of `user` is subscribed to at the fake."""
    sub = fake.users[user].sub
    return sorted(
        subscription["args"][0]["meetingId"]
        for connection in fake.sync_connections
        if connection["open"] and connection["user"] == sub
        for subscription in connection["subscriptions"]
    )


def test_one_agents_watches_share_a_connection_and_agents_do_not(fake):
    planning, standup = fake.meeting_id("planning"), fake.meeting_id("standup")

    async def scenario() -> None:
        agent_planning = watching(fake, "planning")
        agent_standup = watching(fake, "standup")
        agent_planning_again = watching(fake, "planning")
        alice_planning = watching(fake, "planning", "alice")
        firsts = [await anext(stream) for stream in (agent_planning, agent_standup)]
        firsts += [await anext(stream) for stream in (agent_planning_again, alice_planning)]
        assert firsts[0].meeting == firsts[2].meeting

        assert len(fake.sync_connections) == 2
        assert sync.figures().connections_open == 2
        # Each page has a query of its own, two pages of the agent on one meeting too: every
        # answer Connvo sends is one page's, recorded once.
        assert subscriptions(fake, "agent") == sorted([planning, planning, standup])
        assert subscriptions(fake, "alice") == [planning]

        # Both of the agent's pages and alice's get the change, pushed once per page.
        await change(fake, "planning", participantCount=40)
        for stream in (agent_planning, agent_planning_again, alice_planning):
            assert (await anext(stream)).meeting.participant_count == 40

        # Closing a page removes its own query, not the other page's on the same meeting.
        await agent_planning_again.aclose()
        await until(lambda: subscriptions(fake, "agent") == [planning, standup], "one removed")
        await agent_standup.aclose()
        await until(lambda: subscriptions(fake, "agent") == [planning], "standup removed")
        assert len(fake.sync_connections) == 2

        # The last page of an agent closes the connection.
        await agent_planning.aclose()
        await until(lambda: not subscriptions(fake, "agent"), "the agent's socket closed")
        assert [c["open"] for c in fake.sync_connections] == [False, True]
        assert sync.figures().connections_open == 1
        await alice_planning.aclose()
        await until(lambda: sync.figures().connections_open == 0, "every socket closed")

    run(scenario())
    assert sync.figures().connections_opened == 2
    assert sync.figures().answers_received == fake.answers_sent


def test_a_cancelled_page_removes_its_subscription(fake):
    async def scenario() -> None:
        staying = watching(fake, "planning")
        await anext(staying)
        seen = asyncio.Event()

        async def page() -> None:
            async for _ in watching(fake, "standup"):
                seen.set()

        task = asyncio.create_task(page())
        await seen.wait()
        assert len(subscriptions(fake, "agent")) == 2
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        planning = fake.meeting_id("planning")
        await until(lambda: subscriptions(fake, "agent") == [planning], "standup removed")
        await staying.aclose()

    run(scenario())
    assert len(fake.sync_connections) == 1


@pytest.mark.parametrize("others", [0, 1], ids=["its last query", "beside another"])
def test_an_answer_on_its_way_when_a_page_leaves_is_still_given(fake, others):
    """Leaving (`leaving` set) removes the subscription, but the answer Connvo sent before it had
    the removal is still yielded (to be recorded), and the watch ends once Connvo confirms it:
    every answer Connvo sent is yielded. Closing the iterator instead drops such an answer."""

    async def scenario() -> list[Any]:
        staying = [watching(fake, "planning") for _ in range(others)]
        for other in staying:
            await anext(other)
        leaving = asyncio.Event()
        page = aiter(
            sync.watch(
                deployment=dev(),
                token=tokens(fake.token_for("agent"))[0],
                meeting_id=fake.meeting_id("standup"),
                user_key="agent",
                leaving=leaving,
            )
        )
        await anext(page)  # the first answer
        # Connvo sends the change while the page is going away: written to the socket before
        # the client has read it (this loop waits for the fake), and the page leaves at once.
        fake.update_meeting("standup", participantCount=42)
        leaving.set()
        after = [result async for result in page]
        # The watch ended on Connvo's confirmation: the fake has already removed the page's query.
        assert subscriptions(fake, "agent") == [fake.meeting_id("planning")] * others
        for other in staying:
            await other.aclose()
        # The other page's removal is sent as it closes, and the fake applies it in its own time.
        await until(lambda: subscriptions(fake, "agent") == [], "the other page's query removed")
        return after

    after = run(scenario())

    assert [r.meeting.participant_count for r in after] == [42]
    assert fake.answers_sent == 2 + others
    assert sync.figures().answers_received == fake.answers_sent


# -- failures: each switch -----------------------------------------------------------------------


def failure_of(fake, meeting: str = "planning", **options: Any) -> tuple[list[Any], Exception]:
    async def scenario() -> tuple[list[Any], Exception]:
        results = []
        try:
            async for result in watching(fake, meeting, **options):
                results.append(result)
        except PushUnavailable as exc:
            return results, exc
        pytest.fail(f"the watch ended without PushUnavailable, after {results}")

    return run(scenario())


def test_a_refused_upgrade_is_push_unavailable(fake):
    fake.misbehave("sync_refuse", status=503)
    results, failure = failure_of(fake)
    assert results == []
    assert failure.outcome == connvo.ConnvoUnreachable.outcome
    assert "503" in failure.detail


def test_a_redirected_upgrade_is_not_followed_with_the_agents_token(fake, settings):
    """websockets follows a redirect, to another host too, and the first message on the socket
    is Authenticate, with the agent's token: wherever the redirect pointed got it."""
    target = fake.url.replace("http://", "ws://", 1)

    class Redirecting(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    settings.CONNVO_DEPLOYMENTS = {"dev": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        results, failure = failure_of(fake)
    finally:
        server.shutdown()
        server.server_close()

    assert results == []
    assert "307" in failure.detail
    assert not [call for call in fake.calls if "sync" in call.path]


def test_a_silent_websocket_is_push_unavailable(fake):
    fake.misbehave("sync_silent")
    results, failure = failure_of(fake)
    assert results == []
    assert "nothing from Connvo" in failure.detail


def test_a_dropped_websocket_is_push_unavailable(fake):
    fake.misbehave("sync_drop")
    results, failure = failure_of(fake)
    assert results == []
    assert "closed" in failure.detail


def test_a_connection_dropped_after_answers_is_push_unavailable(fake):
    async def scenario() -> tuple[list[Any], Exception | None]:
        results = []
        try:
            async for result in watching(fake, "planning"):
                results.append(result)
                await asyncio.to_thread(fake.drop_sync_connections)
        except PushUnavailable as exc:
            return results, exc
        return results, None

    results, failure = run(scenario())
    assert len(results) == 1 and isinstance(results[0], connvo.Lookup)
    assert isinstance(failure, PushUnavailable)
    # Not reconnected: the page falls back to polling.
    assert len(fake.sync_connections) == 1


def test_garbage_is_push_unavailable(fake):
    fake.misbehave("sync_garbage")
    results, failure = failure_of(fake)
    assert results == []
    assert "not JSON" in failure.detail


def test_a_deployment_that_is_down_is_push_unavailable(fake):
    fake.down()
    try:
        results, failure = failure_of(fake)
    finally:
        fake.up()
    assert results == []
    assert "could not open" in failure.detail


def test_a_token_refused_twice_is_token_rejected(fake):
    fake.misbehave("sync_reject_token")
    token, given_out = tokens(fake.token_for("agent"), fake.token_for("agent"))

    async def everything() -> list[Any]:
        return [result async for result in watching(fake, "planning", token=token)]

    (result,) = run(everything())
    assert type(result) is connvo.TokenRejected
    # Asked for a fresh token once, tried it on a new connection, and stopped there.
    assert len(given_out) == 2 and given_out[0] != given_out[1]
    assert len(fake.sync_connections) == 2
    assert [c["authErrors"] for c in fake.sync_connections] == [1, 1]


def test_a_token_refused_once_is_replaced_and_the_watch_goes_on(fake):
    fake.misbehave("sync_reject_token", times=1)
    token, given_out = tokens(fake.token_for("agent"), fake.token_for("agent"))

    async def first() -> Any:
        async for result in watching(fake, "planning", token=token):
            return result

    assert isinstance(run(first()), connvo.Lookup)
    assert len(given_out) == 2
    first_socket, second_socket = fake.sync_connections
    assert first_socket["lastCloseReason"] == "InitialConnect"
    assert (second_socket["connectionCount"], second_socket["lastCloseReason"]) == (1, "AuthError")


def test_no_token_to_send_ends_the_watch_with_the_credentials_failure(fake):
    async def no_token() -> str:
        raise connvo.NoToken("Save your Connvo token for dev before looking up meetings.")

    async def everything() -> list[Any]:
        return [result async for result in watching(fake, "planning", token=no_token)]

    (result,) = run(everything())
    assert type(result) is connvo.NoToken
    assert fake.sync_connections == []


# -- re-authentication before the token expires --------------------------------------------------


def test_a_live_subscription_is_reauthenticated_before_its_token_expires(fake):
    short = fake.token_for("agent", expires_in=2)
    token, given_out = tokens(short, fake.token_for("agent"))
    expires_at = read_claims(short).expires_at.timestamp()

    async def scenario() -> list[Any]:
        results = []
        async for result in watching(fake, "standup", token=token):
            results.append(result)
            if len(results) == 1:
                await until(lambda: len(given_out) == 2, "a fresh token asked for")
                await until(
                    lambda: fake.sync_connections[0]["version"]["identity"] == 2,
                    "the fresh token taken on the same connection",
                )
                # Past the first token's expiry, the subscription still gets changes.
                await asyncio.sleep(max(0.0, expires_at + 0.5 - time.time()))
                await change(fake, "standup", participantCount=33)
            else:
                break
        return results

    first, pushed = run(scenario())
    assert isinstance(first, connvo.Lookup)
    # Re-authenticating sent nothing (the answer had not changed, as Convex does): the next
    # answer is the change.
    assert pushed.meeting.participant_count == 33
    assert len(given_out) == 2
    (connection,) = fake.sync_connections
    assert connection["authErrors"] == 0
    assert sync.figures().answers_received == fake.answers_sent


# -- nothing secret in the logs ------------------------------------------------------------------


def test_the_token_never_reaches_a_log_even_at_debug(fake, caplog):
    secret = fake.token_for("agent")
    for name in ("", "websockets", "websockets.client", "meetings.sync", "meetings.sync.wire"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    fake.misbehave("sync_reject_token", times=1)

    async def scenario() -> None:
        async for result in watching(fake, "standup", token=tokens(secret)[0]):
            assert isinstance(result, connvo.TokenRejected)

    try:
        run(scenario())
    finally:
        for name in ("websockets", "websockets.client", "meetings.sync", "meetings.sync.wire"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert secret not in caplog.text
    assert secret.split(".")[1] not in caplog.text  # not even its claims
    wire = [r for r in caplog.records if r.name.startswith(("meetings.sync", "websockets"))]
    assert all(record.levelno > logging.DEBUG for record in wire)


# -- a scripted server: what the fake does not send ----------------------------------------------

MEETING_ID = "jh73saq02zp90fnrt4vh1nxh9gcpc3d4"
MEETING = {
    "_id": MEETING_ID,
    "_creationTime": 1765000000000.5,
    "organizerId": "jd7abc",
    "title": "Planning",
    "state": "active",
    "activeWebRTCSessions": 2,
    "createdAt": 1765000000000,
    "updatedAt": 1765000000000,
    "userRole": "host",
    "userPresence": "joined",
}


def u64(number: int) -> str:
    return base64.b64encode(number.to_bytes(8, "little")).decode()


def transition(step: int, *modifications: dict[str, Any]) -> str:
    """The step-th Transition after the client's first query set and token (1 and 1)."""
    start = {"querySet": 1 if step else 0, "identity": 1 if step else 0, "ts": u64(step)}
    end = {"querySet": 1, "identity": 1, "ts": u64(step + 1)}
    message = {"type": "Transition", "startVersion": start, "endVersion": end}
    return json.dumps({**message, "modifications": list(modifications)})


def updated(value: Any, query_id: int = 0) -> dict[str, Any]:
    return {"type": "QueryUpdated", "queryId": query_id, "value": value, "logLines": []}


async def scripted(
    frames: list[str | bytes], *, hold: bool, ping: bool = False, take: int = 2
) -> list[Any]:
    """Watch a meeting on a server that, once the client has sent Connect, Authenticate and its
    query set, sends `frames` and then waits for the client to leave (`hold`, sending a Ping
    every 0.2 s if `ping`; the client leaves after `take` results) or closes. All the watch
    yields, then its PushUnavailable if any."""

    async def handler(ws: ServerConnection) -> None:
        for _ in range(3):
            await ws.recv()
        for frame in frames:
            await ws.send(frame)
        while hold and ping:
            await asyncio.sleep(0.2)
            await ws.send(json.dumps({"type": "Ping"}))
        if hold:
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        deployment = Deployment(name="scripted", url=f"http://127.0.0.1:{port}")
        token, _ = tokens("not.a.jwt")
        stream = sync.watch(
            deployment=deployment, token=token, meeting_id=MEETING_ID, user_key="agent"
        )
        results: list[Any] = []
        try:
            async for result in stream:
                assert isinstance(result, connvo.Lookup | LookupFailed)
                results.append(result)
                if hold and len(results) == take:
                    break
        except PushUnavailable as exc:
            results.append(exc)
        finally:
            await stream.aclose()
        return results


def test_an_answer_sent_again_unchanged_is_yielded_again_to_be_recorded():
    # Convex sends a query's answer only when its result changed (by its hash, with the query's
    # log lines); an answer it does send again is still an answer to the agent, and on record.
    renamed = {**MEETING, "title": "Planning, renamed"}
    frames = [
        transition(0, updated(MEETING)),
        transition(1, updated(MEETING)),
        transition(2, updated(renamed)),
    ]
    first, again, renamed_one = run(scripted(frames, hold=True, take=3))
    assert first.meeting.title == again.meeting.title == "Planning"
    assert (first.attempts, again.attempts) == (1, 0)
    assert renamed_one.meeting.title == "Planning, renamed"


def test_a_fatal_error_is_push_unavailable():
    frames = [transition(0, updated(MEETING)), json.dumps({"type": "FatalError", "error": "no"})]
    first, failure = run(scripted(frames, hold=True))
    assert isinstance(first, connvo.Lookup)
    assert isinstance(failure, PushUnavailable)
    assert failure.detail == "FatalError: no"


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        ([transition(1, updated(MEETING))], "does not start where"),
        ([transition(0, {"type": "QueryExploded", "queryId": 0})], "unknown type"),
        ([json.dumps({"type": "TransitionChunk", "chunk": "{", "partNumber": 0})], "Chunk"),
        ([b"\x00binary"], "binary"),
        (["[1, 2]"], "without a type"),
    ],
)
def test_what_is_not_the_protocol_is_push_unavailable(frames, words):
    (failure,) = run(scripted(frames, hold=True))
    assert isinstance(failure, PushUnavailable)
    assert words in failure.detail


def test_a_server_that_pings_but_never_answers_is_push_unavailable(settings):
    settings.CONNVO_READ_TIMEOUT = 0.5
    (failure,) = run(scripted([], hold=True, ping=True))
    assert isinstance(failure, PushUnavailable)
    assert "no first answer" in failure.detail


def test_pings_and_unknown_messages_keep_the_subscription():
    renamed = {**MEETING, "title": "Planning, renamed"}
    frames = [
        json.dumps({"type": "Ping"}),
        transition(0, updated(MEETING)),
        json.dumps({"type": "SomethingNewer", "what": 1}),
        json.dumps({"type": "Ping"}),
        transition(1, updated(renamed)),
    ]
    first, second = run(scripted(frames, hold=True))
    assert (first.meeting.title, second.meeting.title) == ("Planning", "Planning, renamed")


# -- anything a server may send ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
contract_fields = [key for key in MEETING if key != "_id"] + [
    "description",
    "scheduledAt",
    "duration",
    "participantCount",
    "averageRating",
    "streamRoomId",
    "webrtcEnabled",
]
meeting_values = st.fixed_dictionaries(
    {"_id": st.text(min_size=1, max_size=8) | json_values},
    optional={
        key: json_values | st.sampled_from(["active", "archived", "host"])
        for key in contract_fields
    },
)
error_data = json_values | st.fixed_dictionaries(
    {"code": st.sampled_from(["FORBIDDEN", "UNAUTHORIZED", "NOPE"]) | json_values},
    optional={"message": st.sampled_from(["not provisioned", ""]) | json_values},
)
modifications = st.one_of(
    st.builds(updated, meeting_values | json_values, st.integers(-1, 2)),
    st.fixed_dictionaries(
        {
            "type": st.just("QueryFailed"),
            "queryId": st.integers(0, 2),
            "errorMessage": st.text(max_size=40)
            | st.just("ArgumentValidationError: no")
            | json_values,
            "errorData": error_data,
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("QueryRemoved"), "queryId": json_values | st.integers(0, 2)}
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
server_frames = st.one_of(
    st.builds(transition, st.integers(0, 1), modifications),
    st.lists(modifications, max_size=3).map(lambda mods: transition(0, *mods)),
    st.builds(
        lambda kind, words: json.dumps({"type": kind, "error": words, "baseVersion": 0}),
        st.sampled_from(["AuthError", "FatalError", "Ping", "Transition", "MutationResponse"]),
        json_values,
    ),
    json_values.map(json.dumps),
    st.text(max_size=30),
    st.binary(max_size=10),
)


@examples(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=st.lists(server_frames, min_size=1, max_size=4))
def test_any_server_message_is_applied_or_refused_never_raised_otherwise(frames):
    deployment = Deployment(name="dev", url="http://127.0.0.1:9")

    async def token() -> str:
        return "not.a.jwt"

    connection = sync._Connection(user_key="agent", deployment=deployment, token=token)
    watcher = connection.subscribe(MEETING_ID)
    connection.query_set_version = connection.identity_version = 1
    for frame in frames:
        try:
            connection.handle(sync._parse(frame))
        except (sync._Violation, sync._Stop):
            break
    while not watcher.queue.empty():
        answer = watcher.queue.get_nowait()
        result = sync._result(answer, deployment, meeting_id=MEETING_ID, latency_ms=0, attempts=0)
        assert isinstance(result, connvo.Lookup | LookupFailed)


@examples(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=st.lists(server_frames, min_size=1, max_size=3))
def test_a_watch_yields_typed_results_whatever_the_server_sends(frames):
    # Only Lookups and LookupFailed, then an end or PushUnavailable: nothing else escapes.
    results = run(scripted(frames, hold=False))
    assert all(isinstance(result, connvo.Lookup | LookupFailed) for result in results)
