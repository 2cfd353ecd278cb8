"""A fake Connvo (Convex) deployment for the console's tests and demo.

It speaks the one endpoint the console calls, `POST /api/run/meetings/queries/getMeeting`
(/work/shared/contract/getMeeting.openapi.yaml), over real HTTP on loopback, with real RS256 tokens,
a seeded world of users and meetings, a call log and switches that make it misbehave::

    with FakeConnvo(seed=0) as fake:
        token = fake.token_for("agent")
        requests.post(
            fake.url + GET_MEETING_PATH,
            json={"args": {"meetingId": fake.meeting_id("planning")}, "format": "json"},
            headers={"Authorization": f"Bearer {token}", "Convex-Client": "console-0.1.0"},
        )

`python -m fakeconnvo` serves one until Ctrl-C; `/_fake/...` endpoints drive it from outside.

Fake WorkOS: the same server plays WorkOS AuthKit's User Management API for WorkOS's Python SDK,
pointed at it with `WorkOSClient(api_key=fake.workos_api_key, client_id=fake.workos_client_id,
base_url=fake.url, max_retries=0)`. `GET /user_management/authorize` (provider=authkit, PKCE
S256 optional) signs in at once as `fake.workos_login_user` (the agent; `workos_login_as()` or a
seeded user's email as login_hint picks another) and redirects back with a one-time code (10
minutes); `POST /user_management/authenticate` exchanges it, or a refresh token, for the user, an
RS256 access token signed with the deployment's own key (sub = that user's, sid = the session,
exp = now + `access_token_ttl`, 300 s), so it works on getMeeting until it expires, and a refresh
token. Refresh tokens are single-use and rotate; presenting a spent one answers 400 invalid_grant
"Refresh token already exchanged." and, as reuse detection, ends the session
(`workos_reuse_revokes_session`), after which its tokens get "Session has already ended.";
`workos_refresh_grace` opens WorkOS's replay window (off by default). Exchanges are atomic: of
concurrent ones with one token, exactly one succeeds. `POST /user_management/sessions/revoke`,
`revoke_session()` and `revoke_user_sessions()` end sessions (access tokens already issued live
on). WorkOS requests go to `workos_calls` (not `calls`), refresh grants are counted in
`refresh_count`, `sessions` shows each session, the `workos_*` misbehaviours (workos_slow,
workos_down, workos_error, workos_reply_lost, workos_garbage) fail WorkOS alone, and
`/_fake/workos/...` drives it from outside.
"""

from fakeconnvo.server import GET_MEETING_PATH, UNAUTHENTICATED_MESSAGE, Call, FakeConnvo
from fakeconnvo.tokens import DEFAULT_ISSUER
from fakeconnvo.workos import (
    AUTHENTICATE_PATH,
    AUTHORIZE_PATH,
    DEFAULT_WORKOS_API_KEY,
    DEFAULT_WORKOS_CLIENT_ID,
    REFRESH_TOKEN_REUSED,
    REFRESH_TOKEN_UNKNOWN,
    REVOKE_SESSION_PATH,
    SESSION_ENDED,
    WorkOSCall,
    WorkOSSession,
)
from fakeconnvo.world import DELETE, MeetingRecord, Participation, User

__all__ = [
    "AUTHENTICATE_PATH",
    "AUTHORIZE_PATH",
    "DEFAULT_ISSUER",
    "DEFAULT_WORKOS_API_KEY",
    "DEFAULT_WORKOS_CLIENT_ID",
    "DELETE",
    "GET_MEETING_PATH",
    "REFRESH_TOKEN_REUSED",
    "REFRESH_TOKEN_UNKNOWN",
    "REVOKE_SESSION_PATH",
    "SESSION_ENDED",
    "UNAUTHENTICATED_MESSAGE",
    "Call",
    "FakeConnvo",
    "MeetingRecord",
    "Participation",
    "User",
    "WorkOSCall",
    "WorkOSSession",
]
