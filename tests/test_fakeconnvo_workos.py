"""The fake WorkOS (AuthKit) answers WorkOS's own Python SDK the way api.workos.com does.

Every WorkOS request here is made by the real `workos` SDK pointed at the fake (`base_url`), so
what the console's client will send and parse is what these tests pin. The browser leg of the
OAuth flow (following the authorize URL) is plain HTTP without following the redirect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
import pytest
import requests
from workos import WorkOSClient, create_public_client
from workos._errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitExceededError,
    ServerError,
    WorkOSError,
)

from fakeconnvo import (
    GET_MEETING_PATH,
    REFRESH_TOKEN_REUSED,
    REFRESH_TOKEN_UNKNOWN,
    SESSION_ENDED,
    UNAUTHENTICATED_MESSAGE,
    FakeConnvo,
)
from fakeconnvo.__main__ import _parse_args

REDIRECT_URI = "http://127.0.0.1:8000/connvo/workos/callback"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeConnvo]:
    with FakeConnvo(seed=0) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(fake: FakeConnvo) -> None:
    fake.reset_behaviour()
    fake.reset_workos()
    fake.clear_calls()
    fake.access_token_ttl = 300
    fake.workos_allowed_redirects = []
    fake.workos_code_ttl = 600
    fake.workos_refresh_grace = 0
    fake.workos_reuse_revokes_session = True


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # never send loopback traffic through a configured proxy
        yield session


def sdk_client(fake: FakeConnvo, **options: Any) -> tuple[WorkOSClient, httpx2.Client]:
    transport = httpx2.Client(trust_env=False, timeout=5)
    options.setdefault("api_key", fake.workos_api_key)
    options.setdefault("client_id", fake.workos_client_id)
    client = WorkOSClient(base_url=fake.url, max_retries=0, http_client=transport, **options)
    return client, transport


@pytest.fixture
def workos(fake: FakeConnvo) -> Iterator[WorkOSClient]:
    client, transport = sdk_client(fake)
    with transport:
        yield client


def authorize_url(workos: WorkOSClient, **options: Any) -> str:
    """A plain (no PKCE) authorize URL back to REDIRECT_URI."""
    return workos.user_management.get_authorization_url(redirect_uri=REDIRECT_URI, **options)


def follow(http: requests.Session, url: str) -> dict[str, str]:
    """Open an authorize URL as the browser would; the query of where it redirects to."""
    response = http.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def sign_in(workos: WorkOSClient, http: requests.Session, **options: Any) -> Any:
    """The whole PKCE flow; the AuthenticateResponse."""
    options.setdefault("provider", "authkit")
    started = workos.user_management.get_authorization_url_with_pkce(
        redirect_uri=REDIRECT_URI, **options
    )
    back = follow(http, started["url"])
    assert back["state"] == started["state"]
    return workos.user_management.authenticate_with_code_pkce(
        code=back["code"], code_verifier=started["code_verifier"]
    )


def get_meeting(
    http: requests.Session, fake: FakeConnvo, token: str, label: str = "planning"
) -> requests.Response:
    return http.post(
        fake.url + GET_MEETING_PATH,
        json={"args": {"meetingId": fake.meeting_id(label)}, "format": "json"},
        headers={"Authorization": f"Bearer {token}", "Convex-Client": "console-0.1.0"},
        timeout=5,
    )


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def refresh_fails(workos: WorkOSClient, refresh_token: str) -> BadRequestError:
    with pytest.raises(BadRequestError) as caught:
        workos.user_management.authenticate_with_refresh_token(refresh_token=refresh_token)
    error = caught.value
    assert (error.status_code, error.error, error.code) == (400, "invalid_grant", None)
    return error


# -- signing in ---------------------------------------------------------------------------------


def test_pkce_sign_in_gives_a_token_that_works_on_get_meeting(fake, workos, http):
    signed_in = sign_in(workos, http)

    agent = fake.users["agent"]
    assert (signed_in.user.id, signed_in.user.email) == (agent.sub, agent.email)
    assert (signed_in.user.first_name, signed_in.user.last_name) == ("Jordan", "Avery")
    assert signed_in.user.email_verified is True
    assert signed_in.user.last_sign_in_at is not None
    assert signed_in.organization_id is None
    assert signed_in.authentication_method == "Password"

    header = jwt.get_unverified_header(signed_in.access_token)
    assert header["alg"] == "RS256"
    token = claims(signed_in.access_token)
    assert token["sub"] == agent.sub
    assert token["iss"] == fake.issuer
    assert token["sid"].startswith("session_01")
    assert token["exp"] - token["iat"] == 300
    assert set(token) >= {"iss", "sub", "sid", "exp", "iat", "jti"}

    value = get_meeting(http, fake, signed_in.access_token).json()["value"]
    assert value["userRole"] == "host"

    session = fake.sessions[token["sid"]]
    assert (session.user, session.active) == ("agent", True)
    assert session.refresh_token == signed_in.refresh_token
    assert [call.endpoint for call in fake.workos_calls] == ["authorize", "authenticate"]
    exchange = fake.workos_calls[1]
    assert (exchange.grant_type, exchange.status, exchange.session_id) == (
        "authorization_code",
        200,
        token["sid"],
    )
    assert exchange.params["client_secret"] == "[redacted]"
    assert exchange.client_secret_ok is True
    assert exchange.params["code_verifier"]
    assert fake.calls[-1].path == GET_MEETING_PATH  # WorkOS requests stay out of `calls`
    assert len(fake.calls) == 1


def test_code_flow_without_pkce_uses_the_client_secret_and_the_code_once(fake, workos, http):
    url = workos.user_management.get_authorization_url(
        redirect_uri=REDIRECT_URI, provider="authkit", state="opaque-state"
    )
    back = follow(http, url)
    assert back["state"] == "opaque-state"

    signed_in = workos.user_management.authenticate_with_code(code=back["code"])
    assert get_meeting(http, fake, signed_in.access_token).status_code == 200

    with pytest.raises(BadRequestError) as caught:
        workos.user_management.authenticate_with_code(code=back["code"])
    assert caught.value.error == "invalid_grant"
    assert caught.value.error_description == "The code has already been used."


def test_public_client_signs_in_and_refreshes_without_a_secret(fake, http):
    transport = httpx2.Client(trust_env=False, timeout=5)
    with transport:
        public = create_public_client(
            client_id=fake.workos_client_id, base_url=fake.url, http_client=transport
        )
        signed_in = sign_in(public, http)
        refreshed = public.user_management.authenticate_with_refresh_token(
            refresh_token=signed_in.refresh_token
        )
    assert get_meeting(http, fake, refreshed.access_token).status_code == 200
    assert all(call.client_secret_ok is None for call in fake.workos_calls)


def test_login_as_and_login_hint_pick_the_user(fake, workos, http):
    fake.workos_login_as("alice")
    assert fake.workos_login_user.label == "alice"
    alice = sign_in(workos, http)
    assert alice.user.id == fake.users["alice"].sub
    assert get_meeting(http, fake, alice.access_token, "private").json()["value"]["userRole"]

    bob = sign_in(workos, http, login_hint=fake.users["bob"].email.upper())
    assert bob.user.id == fake.users["bob"].sub
    nobody = sign_in(workos, http, login_hint="stranger@example.com")
    assert nobody.user.id == fake.users["alice"].sub  # only a hint: the login user it is
    assert [session.user for session in fake.sessions.values()] == ["alice", "bob", "alice"]


def test_wrong_pkce_verifier_fails_and_spends_the_code(workos, http):
    started = workos.user_management.get_authorization_url_with_pkce(
        redirect_uri=REDIRECT_URI, provider="authkit"
    )
    code = follow(http, started["url"])["code"]

    with pytest.raises(BadRequestError) as caught:
        workos.user_management.authenticate_with_code_pkce(code=code, code_verifier="x" * 43)
    assert caught.value.error == "invalid_grant"
    assert "code_verifier" in caught.value.error_description

    with pytest.raises(BadRequestError, match="already been used"):
        workos.user_management.authenticate_with_code_pkce(
            code=code, code_verifier=started["code_verifier"]
        )


def test_pkce_code_needs_its_verifier_and_codes_expire(fake, workos, http):
    started = workos.user_management.get_authorization_url_with_pkce(
        redirect_uri=REDIRECT_URI, provider="authkit"
    )
    code = follow(http, started["url"])["code"]
    with pytest.raises(BadRequestError, match="code_verifier is required"):
        workos.user_management.authenticate_with_code(code=code)

    fake.workos_code_ttl = 0
    url = authorize_url(workos, provider="authkit")
    with pytest.raises(BadRequestError, match="expired") as caught:
        workos.user_management.authenticate_with_code(code=follow(http, url)["code"])
    assert caught.value.error == "invalid_grant"

    with pytest.raises(BadRequestError, match="invalid"):
        workos.user_management.authenticate_with_code(code="never-issued")


def test_wrong_client_credentials_are_401_invalid_client(fake, workos, http):
    url = authorize_url(workos, provider="authkit")
    code = follow(http, url)["code"]

    wrong_key, transport = sdk_client(fake, api_key="sk_test_wrong")
    with transport, pytest.raises(AuthenticationError) as caught:
        wrong_key.user_management.authenticate_with_code(code=code)
    assert (caught.value.status_code, caught.value.error) == (401, "invalid_client")
    assert caught.value.error_description == "Invalid client secret."

    wrong_client, transport = sdk_client(fake, client_id="client_01NOTTHEFAKE0000000000000")
    with transport, pytest.raises(AuthenticationError) as caught:
        wrong_client.user_management.authenticate_with_code(code=code)
    assert caught.value.error == "invalid_client"

    # Neither attempt spent the code.
    assert workos.user_management.authenticate_with_code(code=code).access_token


# -- the authorize page ------------------------------------------------------------------------


def test_unknown_client_gets_an_error_page_not_a_redirect(fake, workos, http):
    url = workos.user_management.get_authorization_url(
        redirect_uri=REDIRECT_URI, provider="authkit", client_id="client_01UNKNOWN"
    )
    response = http.get(url, allow_redirects=False, timeout=5)

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Invalid client ID" in response.text


def test_redirect_uri_must_be_allowed_when_some_are_configured(fake, workos, http):
    fake.workos_allowed_redirects = [REDIRECT_URI]
    elsewhere = workos.user_management.get_authorization_url(
        redirect_uri="https://attacker.example/cb", provider="authkit"
    )
    response = http.get(elsewhere, allow_redirects=False, timeout=5)
    assert (response.status_code, "Location" in response.headers) == (400, False)

    allowed = workos.user_management.get_authorization_url(
        redirect_uri=REDIRECT_URI, provider="authkit"
    )
    assert follow(http, allowed)["code"]


def test_deny_mode_and_bad_requests_redirect_back_with_an_oauth_error(fake, workos, http):
    fake.workos_authorize_mode = "deny"
    url = workos.user_management.get_authorization_url(
        redirect_uri=REDIRECT_URI, provider="authkit", state="s1"
    )
    back = follow(http, url)
    assert (back["error"], back["state"]) == ("access_denied", "s1")
    assert back["error_description"]
    assert "code" not in back
    with pytest.raises(ValueError, match="authorize mode"):
        fake.workos_authorize_mode = "maybe"

    fake.workos_authorize_mode = "approve"
    no_provider = authorize_url(workos, state="s2")
    back = follow(http, no_provider)
    assert (back["error"], back["state"]) == ("invalid_request", "s2")
    assert "provider=authkit" in back["error_description"]


# -- refreshing ---------------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_is_detected(fake, workos, http):
    signed_in = sign_in(workos, http)
    sid = claims(signed_in.access_token)["sid"]

    refreshed = workos.user_management.authenticate_with_refresh_token(
        refresh_token=signed_in.refresh_token
    )
    assert refreshed.refresh_token != signed_in.refresh_token
    assert refreshed.access_token != signed_in.access_token
    assert claims(refreshed.access_token)["sid"] == sid
    assert refreshed.user.id == fake.users["agent"].sub
    assert get_meeting(http, fake, refreshed.access_token).status_code == 200
    assert fake.sessions[sid].refresh_token == refreshed.refresh_token
    assert fake.refresh_count == 1

    reused = refresh_fails(workos, signed_in.refresh_token)
    assert reused.error_description == REFRESH_TOKEN_REUSED
    # Reuse detection: the whole session ends, the newest token with it.
    session = fake.sessions[sid]
    assert (session.active, session.end_reason) == (False, "refresh_token_reused")
    assert refresh_fails(workos, refreshed.refresh_token).error_description == SESSION_ENDED
    assert refresh_fails(workos, "never-issued").error_description == REFRESH_TOKEN_UNKNOWN
    assert fake.refresh_count == 4
    assert [call.status for call in fake.workos_calls if call.grant_type == "refresh_token"] == [
        200,
        400,
        400,
        400,
    ]


def test_reuse_can_leave_the_session_alive(fake, workos, http):
    fake.workos_reuse_revokes_session = False
    signed_in = sign_in(workos, http)
    refreshed = workos.user_management.authenticate_with_refresh_token(
        refresh_token=signed_in.refresh_token
    )

    assert refresh_fails(workos, signed_in.refresh_token).error_description == REFRESH_TOKEN_REUSED
    again = workos.user_management.authenticate_with_refresh_token(
        refresh_token=refreshed.refresh_token
    )
    assert get_meeting(http, fake, again.access_token).status_code == 200


def test_refresh_grace_replays_the_same_answer(fake, workos, http):
    fake.workos_refresh_grace = 30
    signed_in = sign_in(workos, http)
    first = workos.user_management.authenticate_with_refresh_token(
        refresh_token=signed_in.refresh_token
    )
    replay = workos.user_management.authenticate_with_refresh_token(
        refresh_token=signed_in.refresh_token
    )
    assert (replay.access_token, replay.refresh_token) == (first.access_token, first.refresh_token)

    # Once the new token is used, the old one is plain reuse again.
    workos.user_management.authenticate_with_refresh_token(refresh_token=first.refresh_token)
    assert refresh_fails(workos, signed_in.refresh_token).error_description == REFRESH_TOKEN_REUSED


def test_concurrent_refreshes_with_one_token_exactly_one_succeeds(fake, workos, http):
    signed_in = sign_in(workos, http)
    racers = 6
    barrier = threading.Barrier(racers)
    outcomes: list[Any] = []

    def race() -> None:
        client, transport = sdk_client(fake)
        with transport:
            barrier.wait()
            try:
                outcomes.append(
                    client.user_management.authenticate_with_refresh_token(
                        refresh_token=signed_in.refresh_token
                    )
                )
            except BadRequestError as error:
                outcomes.append(error)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    successes = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    failures = [outcome for outcome in outcomes if isinstance(outcome, BadRequestError)]
    assert (len(successes), len(failures)) == (1, racers - 1)
    assert {failure.error for failure in failures} == {"invalid_grant"}
    assert fake.refresh_count == racers
    # The losers presented a spent token: reuse detection ended the session for the winner too.
    assert refresh_fails(workos, successes[0].refresh_token).error_description == SESSION_ENDED


# -- ending sessions ---------------------------------------------------------------------------


def test_revoked_session_cannot_refresh_but_its_access_token_lives_on(fake, workos, http):
    signed_in = sign_in(workos, http)
    sid = claims(signed_in.access_token)["sid"]

    workos.user_management.revoke_session(session_id=sid)

    assert refresh_fails(workos, signed_in.refresh_token).error_description == SESSION_ENDED
    assert (fake.sessions[sid].active, fake.sessions[sid].end_reason) == (False, "revoked")
    # A JWT is not checked against WorkOS: it works until it expires.
    assert get_meeting(http, fake, signed_in.access_token).status_code == 200

    with pytest.raises(NotFoundError) as caught:
        workos.user_management.revoke_session(session_id="session_01NOPE")
    assert caught.value.code == "entity_not_found"


def test_revoke_in_process_and_by_user(fake, workos, http):
    first = sign_in(workos, http)
    second = sign_in(workos, http)
    fake.workos_login_as("bob")
    bob = sign_in(workos, http)

    assert fake.revoke_session(claims(first.access_token)["sid"]) is True
    assert fake.revoke_session(claims(first.access_token)["sid"]) is False
    assert fake.revoke_user_sessions("agent") == 1
    assert refresh_fails(workos, second.refresh_token).error_description == SESSION_ENDED
    assert workos.user_management.authenticate_with_refresh_token(
        refresh_token=bob.refresh_token
    ).access_token
    with pytest.raises(KeyError):
        fake.revoke_session("session_01NOPE")


def test_revoke_needs_the_api_key(fake, workos, http):
    signed_in = sign_in(workos, http)
    wrong, transport = sdk_client(fake, api_key="sk_test_wrong")
    with transport, pytest.raises(AuthenticationError):
        wrong.user_management.revoke_session(session_id=claims(signed_in.access_token)["sid"])
    assert all(session.active for session in fake.sessions.values())


# -- expiry --------------------------------------------------------------------------------------


def test_expired_access_token_is_rejected_and_a_refresh_recovers(fake, workos, http):
    fake.access_token_ttl = 0
    signed_in = sign_in(workos, http)

    response = get_meeting(http, fake, signed_in.access_token)
    assert response.status_code == 401
    assert response.json() == {"code": "Unauthenticated", "message": UNAUTHENTICATED_MESSAGE}

    fake.access_token_ttl = 300
    refreshed = workos.user_management.authenticate_with_refresh_token(
        refresh_token=signed_in.refresh_token
    )
    assert get_meeting(http, fake, refreshed.access_token).status_code == 200


def test_access_token_works_until_exp_then_not(fake, workos, http, time_machine):
    time_machine.move_to(datetime(2028, 2, 29, 12, 0, tzinfo=UTC), tick=False)
    fake.access_token_ttl = 60
    signed_in = sign_in(workos, http)
    expires_at = claims(signed_in.access_token)["exp"]

    time_machine.move_to(datetime.fromtimestamp(expires_at - 1, UTC), tick=False)
    assert get_meeting(http, fake, signed_in.access_token).status_code == 200
    time_machine.move_to(datetime.fromtimestamp(expires_at + 1, UTC), tick=False)
    assert get_meeting(http, fake, signed_in.access_token).status_code == 401


# -- misbehaviour -------------------------------------------------------------------------------


def test_workos_down_resets_without_spending_and_connvo_keeps_working(fake, workos, http):
    signed_in = sign_in(workos, http)
    fake.misbehave("workos_down")

    with pytest.raises(WorkOSError, match="Network error"):
        workos.user_management.authenticate_with_refresh_token(
            refresh_token=signed_in.refresh_token
        )
    assert get_meeting(http, fake, signed_in.access_token).status_code == 200

    fake.reset_behaviour()
    assert workos.user_management.authenticate_with_refresh_token(
        refresh_token=signed_in.refresh_token
    ).access_token
    down = [call for call in fake.workos_calls if call.misbehaviour == "workos_down"]
    assert [(call.grant_type, call.status) for call in down] == [("refresh_token", None)]
    assert fake.refresh_count == 2


def test_workos_errors_map_to_the_sdks_exceptions(fake, workos, http):
    signed_in = sign_in(workos, http)

    fake.misbehave("workos_error", status=503, times=1)
    with pytest.raises(ServerError) as caught:
        workos.user_management.authenticate_with_refresh_token(
            refresh_token=signed_in.refresh_token
        )
    assert (caught.value.status_code, caught.value.code) == (503, "service_unavailable")

    fake.misbehave("workos_error", status=429, retry_after=7, times=1)
    with pytest.raises(RateLimitExceededError) as limited:
        workos.user_management.authenticate_with_refresh_token(
            refresh_token=signed_in.refresh_token
        )
    assert limited.value.retry_after == 7

    # Neither spent the token; Connvo's own switches do not touch WorkOS either.
    fake.misbehave("status", status=500)
    assert workos.user_management.authenticate_with_refresh_token(
        refresh_token=signed_in.refresh_token
    ).access_token
    with pytest.raises(ValueError, match="workos_error needs status"):
        fake.misbehave("workos_error", status=404)


def test_lost_reply_spends_the_token(fake, workos, http):
    signed_in = sign_in(workos, http)
    fake.misbehave("workos_reply_lost", times=1)

    with pytest.raises(WorkOSError, match="Network error"):
        workos.user_management.authenticate_with_refresh_token(
            refresh_token=signed_in.refresh_token
        )
    assert refresh_fails(workos, signed_in.refresh_token).error_description == REFRESH_TOKEN_REUSED


def test_workos_slow_answers_late_while_connvo_answers_at_once(fake, workos, http):
    signed_in = sign_in(workos, http)
    fake.misbehave("workos_slow", delay=60, times=1)
    outcome: list[object] = []

    def slow_refresh() -> None:
        try:
            outcome.append(
                workos.user_management.authenticate_with_refresh_token(
                    refresh_token=signed_in.refresh_token
                )
            )
        except WorkOSError as error:
            outcome.append(error)

    thread = threading.Thread(target=slow_refresh)
    thread.start()
    for _ in range(2000):  # wait for the refresh to be held by the fake
        if any(c.misbehaviour == "workos_slow" and c.status is None for c in fake.workos_calls):
            break
        time.sleep(0.005)

    assert get_meeting(http, fake, signed_in.access_token).status_code == 200

    assert not outcome and thread.is_alive(), "the refresh was answered before Connvo"
    fake.down()  # lets the held refresh go (unanswered)
    thread.join(timeout=30)
    fake.up()
    assert isinstance(outcome[0], WorkOSError)


# -- the rest of the surface --------------------------------------------------------------------


def test_jwks_and_get_user(fake, workos, http):
    signed_in = sign_in(workos, http)

    keys = workos.user_management.get_jwks(fake.workos_client_id).keys
    assert keys[0].kid == jwt.get_unverified_header(signed_in.access_token)["kid"]
    client = jwt.PyJWKClient(workos.user_management.get_jwks_url())
    signing_key = client.get_signing_key_from_jwt(signed_in.access_token)
    verified = jwt.decode(
        signed_in.access_token, signing_key.key, algorithms=["RS256"], issuer=fake.issuer
    )
    assert verified["sub"] == fake.users["agent"].sub

    user = workos.user_management.get_user(fake.users["carol"].sub)
    assert (user.email, user.last_sign_in_at) == (fake.users["carol"].email, None)


def test_control_endpoints_drive_the_fake_workos(fake, workos, http):
    base = fake.url + "/_fake/workos"
    assert http.post(base + "/login", json={"user": "erin"}).json()["loginUser"] == "erin"
    signed_in = sign_in(workos, http)
    assert signed_in.user.id == fake.users["erin"].sub
    workos.user_management.authenticate_with_refresh_token(refresh_token=signed_in.refresh_token)

    assert http.get(base + "/refresh_count").json() == {"refreshCount": 1}
    sessions = http.get(base + "/sessions").json()["sessions"]
    assert [session["user"] for session in sessions.values()] == ["erin"]
    assert http.post(base + "/users/erin/revoke").json() == {"revoked": 1}
    assert not fake.sessions[next(iter(sessions))].active

    state = http.post(base + "/config", json={"accessTokenTtl": 60, "authorizeMode": "deny"})
    assert (state.json()["accessTokenTtl"], fake.workos_authorize_mode) == (60, "deny")
    assert http.post(base + "/config", json={"accessTokenTtl": "soon"}).status_code == 400
    assert http.post(base + "/config", json={"nope": 1}).status_code == 400
    assert http.post(base + "/login", json={"user": "nobody"}).status_code == 404

    calls = http.get(base + "/calls").json()["calls"]
    assert [call["endpoint"] for call in calls] == ["authorize", "authenticate", "authenticate"]
    assert calls[1]["params"]["client_secret"] == "[redacted]"
    reset = http.post(base + "/reset").json()
    assert (reset["sessions"], reset["loginUser"], reset["refreshCount"]) == ({}, "agent", 0)
    assert reset["authorizeMode"] == "approve"
    assert reset["baseUrl"] == fake.url


def test_cli_takes_the_access_token_ttl():
    assert _parse_args([]).access_token_ttl == 300
    assert _parse_args(["--access-token-ttl", "60"]).access_token_ttl == 60
