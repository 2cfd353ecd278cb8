"""Connvo's answer is read once and cleaned once (meetings/connvo.py), however it is shaped: the
shapes the fake Connvo cannot play (a body nested past any parser, text no encoder can write,
an answer trickled a byte at a time) come from a tiny Connvo stand-in on loopback, over real
HTTP."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import Action, AuditEntry
from meetings import connvo
from meetings.deployments import Deployment
from tests.conftest import examples

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
    byte every `drip` seconds when `drip` is set (the status line and headers too, with
    `drip_headers`), or only its first half before hanging up when `cut` is. Counts the
    connections it was opened."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.body = b'{"status":"success","value":null}'
        self.drip = 0.0
        self.drip_headers = False
        self.stall_after = None  # bytes written before it falls silent (and hangs on)
        self.closing = False  # "Connection: close": the connection ends with the answer
        self.cut = False
        self.gzip = False  # the body compressed, as a proxy or CDN in front of Connvo may send it
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
        if self.server.gzip:
            assert "gzip" in self.headers.get("Accept-Encoding", "")
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        if self.server.closing:
            self.send_header("Connection", "close")
            self.close_connection = True
        if self.server.drip_headers:
            # Written as the body is, a byte at a time, with what BaseHTTPRequestHandler buffered.
            self.send_header("X-Padding", "p" * 200)
            self._headers_buffer.append(b"\r\n")
            body = b"".join(self._headers_buffer) + body
            self._headers_buffer = []
        else:
            self.end_headers()
        if self.server.cut:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        if not self.server.drip:
            self.wfile.write(body)
            return
        try:
            for index in range(len(body)):
                if index == self.server.stall_after:
                    time.sleep(30)
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                time.sleep(self.server.drip)
        except OSError:  # the console gave up and hung up
            pass


@pytest.fixture
def odd() -> Iterator[OddConnvo]:
    server = OddConnvo()
    # Checked for shutdown every 50 ms, not serve_forever's 500: each test's stop waits for it.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
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


# --- Nesting --------------------------------------------------------------------------------------


def test_a_body_nested_past_the_parser_is_a_bad_response(odd_dev, agent_client):
    odd_dev.answer('{"status":"success","value":' + nested(100_000) + "}")

    status, shown = page(agent_client)

    assert status == 502
    assert "not in Connvo" in shown
    assert AuditEntry.objects.get(action=Action.LOOKUP).outcome == "bad_response"


@hypothesis_settings(
    deadline=None,
    max_examples=examples(25),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
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


def test_a_meeting_nested_deeper_than_any_meeting_is_a_bad_response(odd_dev, agent_client):
    # Parsed (Python's parser goes deeper than its own recursion limit), but no meeting is nested
    # so deep, and the walk that cleans Connvo's text goes no deeper than a meeting's.
    odd_dev.answer(found(extra=nested(3000)))

    status, _ = page(agent_client)

    assert status == 502
    assert AuditEntry.objects.get(action=Action.LOOKUP).outcome == "bad_response"


@given(depth=st.integers(0, 5_000))
def test_a_pushed_value_nested_too_deep_is_a_bad_response(depth):
    value = {"_id": MEETING_ID}
    for _ in range(depth):
        value = {"_id": MEETING_ID, "x": [value]}
    context = {"http_status": None, "latency_ms": 0, "attempts": 1}

    try:
        lookup = connvo.read_value(
            value, Deployment(name="dev", url="http://127.0.0.1:9"), **context
        )
    except connvo.BadResponse:
        return
    assert lookup.meeting.id == MEETING_ID


# --- Text no page or database can hold ------------------------------------------------------------


def test_a_lone_surrogate_or_nul_in_the_meeting_is_shown_as_unreadable(odd_dev, agent_client):
    # As JSON writes them: a lone surrogate and a NUL are valid JSON escapes.
    odd_dev.answer(
        found(title=json.dumps("Stand\ud800up"), description=json.dumps("\udc00\udc00 x\x00"))
    )

    status, shown = page(agent_client)

    assert status == 200
    assert "Stand\ufffdup" in shown
    assert "\ufffd\ufffd x\ufffd" in shown
    assert AuditEntry.objects.get(action=Action.LOOKUP).outcome == "found"


def test_a_lone_surrogate_or_nul_in_connvos_error_is_shown_and_recorded(odd_dev, agent_client):
    odd_dev.answer(
        json.dumps({"status": "error", "errorMessage": "[Request ID: a\x00\ud800c] Server Error"})
    )

    status, shown = page(agent_client)
    refreshed = agent_client.get(
        reverse("meetings:detail", args=["dev", MEETING_ID]), headers={"HX-Request": "true"}
    )

    assert status == 502
    assert "a\ufffd\ufffdc" in shown
    assert refreshed.status_code in (200, 286)
    assert "could not be recorded" not in refreshed.content.decode()
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert entry.connvo_request_id == "a\ufffd\ufffdc"


def test_a_lone_surrogate_in_a_refusal_is_shown(odd_dev, agent_client):
    odd_dev.answer(json.dumps({"code": "\udc00\udc00", "message": "\ud800"}), status=400)

    status, shown = page(agent_client)

    assert status == 502
    assert "\ufffd\ufffd" in shown


def assert_keepable(text: str) -> None:
    """A page can be encoded with it, and PostgreSQL can store it."""
    text.encode("utf-8")
    assert "\x00" not in text


@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(st.characters(codec=None), max_size=20),
    where=st.sampled_from(["title", "_id", "errorMessage", "errorData", "code"]),
)
def test_whatever_text_connvo_sends_the_console_can_store_and_show(odd, text, where):
    # json.dumps writes a lone surrogate and a NUL as JSON escapes, as Connvo's JSON can.
    error_data = {"code": text, "message": text}
    odd.answer(
        {
            "title": found(title=json.dumps(text)),
            "_id": found(_id=json.dumps(text)),
            "errorMessage": json.dumps({"status": "error", "errorMessage": text}),
            "errorData": json.dumps(
                {"status": "error", "errorMessage": "", "errorData": error_data}
            ),
            "code": json.dumps(error_data),
        }[where],
        status=401 if where == "code" else 200,
    )

    try:
        lookup = look_up(odd)
    except connvo.ConnvoError as error:
        for shown in (error.message, error.detail, error.request_id or ""):
            assert_keepable(shown)
        return
    meeting = lookup.meeting
    for shown in (meeting.id, meeting.title or "", json.dumps(meeting.raw, ensure_ascii=False)):
        assert_keepable(shown)


# --- The agent's token, echoed back ---------------------------------------------------------------

# Shaped like a Connvo token (a JWT): Connvo may quote the one it could not verify.
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyXzAxIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def test_a_token_connvo_echoes_in_a_refusal_is_never_shown_or_recorded(
    agent_client, agent_token, fake_connvo
):
    fake_connvo.misbehave(
        "status",
        status=401,
        code="Unauthenticated",
        message=f"Could not verify token Bearer {agent_token}",
    )

    response = agent_client.get(
        reverse("meetings:detail", args=["dev", fake_connvo.meeting_id("standup")])
    )

    shown = response.content.decode()
    assert response.status_code == 403
    # Under "Connvo said", and in the escalation details to copy.
    assert shown.count("Unauthenticated: Could not verify token Bearer [redacted]") == 2
    assert agent_token not in shown
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert entry.detail == "Unauthenticated: Could not verify token Bearer [redacted]"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(500, {"code": "InternalServerError", "message": f"bad {TOKEN}"}, id="500"),
        pytest.param(200, {"status": "error", "errorMessage": f"Uncaught: {TOKEN}"}, id="thrown"),
        pytest.param(
            200,
            {
                "status": "error",
                "errorMessage": "x",
                "errorData": {"code": "NOPE", "message": f"token Bearer {TOKEN}"},
            },
            id="errorData",
        ),
    ],
)
def test_a_token_in_any_error_text_is_masked_as_the_logs_mask_it(
    odd_dev, agent_client, status, body
):
    odd_dev.answer(json.dumps(body), status=status)

    _, shown = page(agent_client)

    assert "[redacted]" in shown
    assert TOKEN not in shown
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert "[redacted]" in entry.detail and TOKEN not in entry.detail


def test_a_huge_message_from_connvo_is_cut(odd_dev, agent_client):
    odd_dev.answer(json.dumps({"code": "Unauthenticated", "message": "M" * 2_000_000}), status=401)

    status, shown = page(agent_client)

    assert status == 403
    assert len(shown) < 100_000
    assert "M" * 400 in shown


@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    before=st.text(max_size=600),
    after=st.text(max_size=20),
    where=st.sampled_from(["message", "errorMessage", "errorData"]),
)
def test_no_error_text_connvo_sends_shows_the_token_or_grows_past_the_cut(
    odd, before, after, where
):
    said = f"{before}Bearer {TOKEN}{after}"
    odd.answer(
        {
            "message": json.dumps({"code": "InternalServerError", "message": said}),
            "errorMessage": json.dumps({"status": "error", "errorMessage": said}),
            "errorData": json.dumps(
                {
                    "status": "error",
                    "errorMessage": said,
                    "errorData": {"code": said, "message": said},
                }
            ),
        }[where],
        status=500 if where == "message" else 200,
    )

    with pytest.raises(connvo.ConnvoError) as caught:
        look_up(odd)

    error = caught.value
    for shown in (error.message, error.detail):
        assert TOKEN[-12:] not in shown
        assert len(shown) <= 1200  # a code and a message, each cut to 500, and our words


def test_a_token_in_the_sync_sockets_auth_error_is_masked():
    # meetings/sync.py passes Connvo's AuthError words as sent.
    refused = connvo.token_rejected(
        Deployment(name="dev", url="http://127.0.0.1:9"),
        detail=f"AuthError: Could not verify token {TOKEN}\x00",
    )

    assert refused.detail == "AuthError: Could not verify token [redacted]\ufffd"


# --- An answer trickled a byte at a time --------------------------------------------------------


def test_an_answer_trickled_past_the_read_timeout_is_a_timeout(odd, settings):
    settings.CONNVO_CONNECT_TIMEOUT, settings.CONNVO_READ_TIMEOUT = 1.0, 1.0
    # Each byte well within the read timeout, the whole answer far past it (about 17 s).
    odd.answer(found())
    odd.drip = 0.05

    started = time.monotonic()
    with pytest.raises(connvo.ConnvoTimeout) as caught:
        look_up(odd)

    assert time.monotonic() - started < 3
    assert caught.value.attempts == 1  # not retried: Connvo may be struggling


def test_a_trickled_answer_is_a_timeout_on_the_page_and_on_record(odd_dev, agent_client, settings):
    settings.CONNVO_CONNECT_TIMEOUT, settings.CONNVO_READ_TIMEOUT = 1.0, 1.0
    odd_dev.answer(found())
    odd_dev.drip = 0.05

    status, shown = page(agent_client)

    assert status == 504
    assert "did not answer within 1 seconds" in shown
    assert AuditEntry.objects.get(action=Action.LOOKUP).outcome == "timeout"


def test_headers_trickled_past_the_read_timeout_are_a_timeout(odd, settings):
    """requests' read timeout bounds each read of the status line and headers too, not the whole
    of them: a Connvo (or a proxy before it) trickling its headers must not hold the agent and a
    worker thread for as long as it likes."""
    settings.CONNVO_CONNECT_TIMEOUT, settings.CONNVO_READ_TIMEOUT = 1.0, 1.0
    odd.answer(found())
    odd.drip, odd.drip_headers = 0.05, True  # about 15 s of headers

    started = time.monotonic()
    with pytest.raises(connvo.ConnvoTimeout) as caught:
        look_up(odd)

    assert time.monotonic() - started < 3
    assert caught.value.attempts == 1


def test_headers_that_stop_coming_near_the_deadline_end_at_it(odd, settings):
    """The last wait is cut to what is left of the deadline, not given a read timeout of its own
    (which would end it up to a whole read timeout past the deadline)."""
    settings.CONNVO_CONNECT_TIMEOUT, settings.CONNVO_READ_TIMEOUT = 1.0, 2.0
    odd.answer(found())
    odd.drip, odd.drip_headers, odd.stall_after = 0.01, True, 100  # ~1.1 s of headers, then none

    started = time.monotonic()
    with pytest.raises(connvo.ConnvoTimeout):
        look_up(odd)

    assert time.monotonic() - started < 2.8  # the deadline (2 s), not 1.1 s + another 2 s


@pytest.mark.parametrize("drip", [0.0, 0.001])
def test_an_answer_that_closes_its_connection_is_read_whole(odd, drip):
    """With "Connection: close" http.client hands the socket to the answer being read: the
    reader that holds it to its deadline must keep it open until the body is read."""
    odd.answer(found(title=json.dumps("closed after")))
    odd.closing, odd.drip = True, drip

    titles = [look_up(odd).meeting.title for _ in range(2)]

    assert titles == ["closed after"] * 2
    assert odd.connections == 2  # one each: none kept


def test_a_slow_but_whole_answer_keeps_its_connection_for_the_next(odd, settings):
    """The deadline is each answer's own: a connection kept alive for the next lookup starts it
    again, and an answer trickled within it is read whole."""
    connvo._http().close()
    settings.CONNVO_CONNECT_TIMEOUT, settings.CONNVO_READ_TIMEOUT = 1.0, 3.0
    odd.answer(found(title=json.dumps("in time")))
    odd.drip, odd.drip_headers = 0.001, True

    titles = [look_up(odd).meeting.title for _ in range(2)]

    assert titles == ["in time"] * 2
    assert odd.connections == 1


def test_an_answer_within_the_read_timeout_is_read_whole(odd, settings):
    settings.CONNVO_CONNECT_TIMEOUT, settings.CONNVO_READ_TIMEOUT = 1.0, 2.0
    odd.answer(found(title=json.dumps("slow but in time")))
    odd.drip = 0.001

    assert look_up(odd).meeting.title == "slow but in time"


def test_answers_read_whole_keep_their_connection_for_the_next(odd):
    connvo._http().close()  # no connection to the stand-in kept from an earlier test
    odd.answer(found())

    for _ in range(3):
        look_up(odd)
    odd.answer("{}", status=503)  # answered, and retried, on the same connection
    with pytest.raises(connvo.ConnvoOverloaded):
        look_up(odd)

    assert odd.connections == 1


@pytest.mark.parametrize("drip", [0.0, 0.001])
def test_a_compressed_answer_is_read_as_sent(odd, drip):
    """requests asks for gzip; a proxy or CDN in front of Connvo may well send it."""
    odd.gzip, odd.drip = True, drip
    odd.answer(found(title=json.dumps("x" * 2000)))

    assert look_up(odd).meeting.title == "x" * 2000


@pytest.mark.parametrize("compressed", [False, True])
def test_an_answer_larger_than_any_meeting_is_not_read_whole(odd_dev, agent_client, compressed):
    """A proxy's download or a runaway body (or a small gzip that unpacks to a huge one) would
    only take the worker's memory: past connvo.ANSWER_LIMIT the lookup is a bad response."""
    odd_dev.gzip = compressed
    odd_dev.answer(found(description=json.dumps("x" * (connvo.ANSWER_LIMIT + 1))))

    with pytest.raises(connvo.BadResponse) as caught:
        look_up(odd_dev)
    status, html = page(agent_client)

    assert caught.value.detail == f"HTTP 200, over {connvo.ANSWER_LIMIT:,} bytes, not read"
    assert status == 502 and "answered with more than any meeting takes" in html
    entry = AuditEntry.objects.get(action=Action.LOOKUP)
    assert entry.outcome == "bad_response"


def test_an_answer_just_within_the_limit_is_read(odd):
    padding = connvo.ANSWER_LIMIT - len(found(description='""')) - 16
    odd.answer(found(description=json.dumps("x" * padding)))

    assert len(look_up(odd).meeting.description) == padding


def test_an_answer_cut_off_halfway_is_a_failed_request(odd):
    odd.answer(found())
    odd.cut = True

    with pytest.raises(connvo.ConnvoUnreachable) as caught:
        look_up(odd)

    assert "failed before an answer arrived" in caught.value.message
    assert caught.value.detail == "ChunkedEncodingError"  # as requests said it before


# --- Found by the review of 8 December 2026 ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # The contract (/work/shared/contract): 500 "Convex Internal Error" and 400 "Failed
        # operation", each a FailedResponse: a JSON object with no property promised.
        (500, "{}", connvo.ConnvoServerError),
        (500, '{"message": "Internal error"}', connvo.ConnvoServerError),
        (400, "{}", connvo.ConnvoBadRequest),
    ],
)
def test_a_failure_answer_in_the_contracts_shape_is_read_as_connvos(odd, status, body, expected):
    """getMeeting's contract answers 400 and 500 with a FailedResponse, an object whose
    properties it does not name. The console calls such an answer "a body that is not Connvo's
    (perhaps a proxy or gateway page)" (BadResponse, "Not Connvo's answer") unless it carries a
    string `code`: Connvo's own internal error is blamed on a proxy, and a 400 (the console's
    request refused: a console bug, red for auditors) reads as Connvo's failure (amber)."""
    odd.answer(body, status=status)

    with pytest.raises(connvo.ConnvoError) as caught:
        look_up(odd)

    assert type(caught.value) is expected, caught.value.message


@pytest.mark.parametrize("code", ["403", "null", '["NOT_PARTICIPANT"]'])
def test_connvos_error_code_is_reported_as_sent_not_as_its_type(odd, code):
    """A thrown ConvexError's `errorData` is an object (the contract says no more); when its
    `code` is not a string, read_error() puts the code's JSON type in its place: the agent reads
    "Connvo (dev) refused the lookup: a number." (or "null.", "a list."), and the escalation
    details and the audit entry keep "a number" instead of what Connvo sent (403)."""
    odd.answer(
        '{"status":"error","errorMessage":"[Request ID: 5e1f] Uncaught ConvexError",'
        f'"errorData":{{"code":{code}}}}}'
    )

    with pytest.raises(connvo.ConnvoError) as caught:
        look_up(odd)

    words = ("a number", "null", "a list")
    assert not any(caught.value.message.endswith(f"lookup: {w}.") for w in words), (
        caught.value.message
    )
    assert caught.value.detail not in words, caught.value.detail


class _Redirecting(BaseHTTPRequestHandler):
    """Answers its first request with a 307 to the same path (as a proxy or a moved deployment
    may), then with the meeting; keeps what each request carried."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(self.headers.get("Authorization", ""))
        if len(type(self).seen) == 1:
            body = b""
            self.send_response(307)
            self.send_header("Location", self.path)
        else:
            body = json.dumps({"status": "success", "value": MEETING}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_redirect_is_not_followed_with_the_agents_token_behind_the_audit_logs_back(
    agent_client, agent_token, settings
):
    """get_meeting() posts with requests' default allow_redirects=True: a 307 or 308 from
    Connvo (or whatever answers at its address) is followed, the bearer token sent again, and
    the span counts one call (attempts=1) where Connvo received two: calls at Connvo no longer
    equal calls on record, and the token goes wherever a same-host redirect points."""
    _Redirecting.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        settings.CONNVO_DEPLOYMENTS = {
            **settings.CONNVO_DEPLOYMENTS,
            "dev": f"http://127.0.0.1:{server.server_address[1]}",
        }
        page = agent_client.get(reverse("meetings:detail", args=["dev", MEETING_ID]))
    finally:
        server.shutdown()
        server.server_close()

    entry = AuditEntry.objects.get(action="lookup")
    at_connvo = len(_Redirecting.seen)
    assert at_connvo == entry.calls == 1, f"{at_connvo} calls at Connvo, {entry.calls} on record"
    assert "answered with a redirect, which the console does not follow" in page.content.decode()
    assert entry.detail.startswith("HTTP 307 to /")


@pytest.mark.parametrize("title", ['""', '"   "'])
def test_a_meeting_with_an_empty_title_can_still_be_opened_from_its_row(
    odd_dev, agent_client, title
):
    """The contract's `title` is any string, "" included. A row's only link to its meeting page
    is its title (`{% if row.meeting.title is not None %}`), so an empty or blank title draws an
    empty link: nothing to click or read (axe: link-name), while the recent lookups fall back to
    the ID. The meeting page's heading is empty too, and its tab reads " · Connvo Support
    Console"."""
    odd_dev.answer(found(title=title))
    other = MEETING_ID[:-1] + "b"
    url = reverse("meetings:table", args=["dev"]) + f"?ids={MEETING_ID},{other}"

    table = agent_client.get(url).content.decode()
    links = re.findall(r'<a class="js-row-link"[^>]*>(.*?)</a>', table, re.S)
    page = agent_client.get(reverse("meetings:detail", args=["dev", MEETING_ID])).content.decode()
    heading = re.search(r'<h1 id="meeting-title">(.*?)</h1>', page, re.S).group(1)

    assert all(re.sub(r"<[^>]+>", "", link).strip() for link in links), links
    assert re.sub(r"<[^>]+>", "", heading).strip() == "Meeting jd7f3s4h7yv… (its title is empty)"
    assert "<title>Meeting jd7f3s4h7yv… · Connvo Support Console</title>" in page
