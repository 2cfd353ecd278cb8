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
"""

from fakeconnvo.server import GET_MEETING_PATH, UNAUTHENTICATED_MESSAGE, Call, FakeConnvo
from fakeconnvo.tokens import DEFAULT_ISSUER
from fakeconnvo.world import DELETE, MeetingRecord, Participation, User

__all__ = [
    "DEFAULT_ISSUER",
    "DELETE",
    "GET_MEETING_PATH",
    "UNAUTHENTICATED_MESSAGE",
    "Call",
    "FakeConnvo",
    "MeetingRecord",
    "Participation",
    "User",
]
