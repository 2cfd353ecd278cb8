"""The fake deployment's data and the getMeeting query that reads it.

A seeded world of users and meetings (same ids for the same seed), the helpers tests use to change
it, and `World.get_meeting`, which answers the way Connvo's `meetings/queries:getMeeting` does:
argument validation first, then identity, then the meeting and the caller's participation.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fakeconnvo.ids import encode_id, table_of

ROLES: Final = ("host", "participant", "observer")
PRESENCES: Final = ("invited", "joined", "left")
STATES: Final = ("scheduled", "active", "concluded", "cancelled")

# The order of the contract's example; JSON clients must not depend on it.
VALUE_KEYS: Final = (
    "_id",
    "_creationTime",
    "organizerId",
    "title",
    "description",
    "scheduledAt",
    "duration",
    "state",
    "participantCount",
    "averageRating",
    "streamRoomId",
    "webrtcEnabled",
    "activeWebRTCSessions",
    "userRole",
    "userPresence",
    "createdAt",
    "updatedAt",
)
PER_CALLER_KEYS: Final = frozenset({"userRole", "userPresence"})
REQUIRED_KEYS: Final = frozenset(
    {
        "_id",
        "_creationTime",
        "organizerId",
        "title",
        "state",
        "activeWebRTCSessions",
        "createdAt",
        "updatedAt",
        "userRole",
        "userPresence",
    }
)
OPTIONAL_KEYS: Final = frozenset(VALUE_KEYS) - REQUIRED_KEYS

# Messages of Connvo's own guards (convex/auth/guards.ts), thrown as ConvexError.
NO_IDENTITY_MESSAGE: Final = "Authentication required"
NO_SUBJECT_MESSAGE: Final = "Invalid authentication token"
NOT_PROVISIONED_MESSAGE: Final = "User not provisioned. Please complete sign-in and try again."
NOT_PARTICIPANT_MESSAGE: Final = "Access denied: Not a meeting participant"

_ID_VALIDATOR: Final = 'v.id("meetings")'
_ARGS_VALIDATOR: Final = 'v.object({meetingId: v.id("meetings")})'

_MINUTE_MS: Final = 60_000
_HOUR_MS: Final = 60 * _MINUTE_MS
_DAY_MS: Final = 24 * _HOUR_MS
_DRIFT_PERIOD_S: Final = 5.0


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Final = _Delete()
"""Pass as a field value to `update_meeting` to remove an optional field (None does the same)."""


@dataclass
class User:
    """A Connvo user: `id` is the Convex users-table id, `sub` the WorkOS user id in tokens."""

    label: str
    id: str
    sub: str
    email: str
    name: str


@dataclass
class Participation:
    role: str
    presence: str


@dataclass
class MeetingRecord:
    """A meeting document (the contract's fields except the caller's role and presence)."""

    label: str | None
    fields: dict[str, Any]
    # Keyed by the users-table id, like Connvo's meetingParticipants rows.
    participants: dict[str, Participation] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.fields["_id"])

    def value_for(self, participation: Participation) -> dict[str, Any]:
        merged = {
            **self.fields,
            "userRole": participation.role,
            "userPresence": participation.presence,
        }
        ordered = {key: merged[key] for key in VALUE_KEYS if key in merged}
        ordered.update({key: value for key, value in merged.items() if key not in ordered})
        return ordered


@dataclass(frozen=True)
class Returned:
    """The query returned: a meeting value, or None for a meeting that does not exist."""

    value: dict[str, Any] | None


@dataclass(frozen=True)
class Thrown:
    """The query threw a ConvexError carrying `data` (Connvo's {code, message, statusCode...})."""

    data: dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """Convex rejected the arguments before the query ran; `message` is its validator text."""

    message: str


Outcome = Returned | Thrown | Invalid


@dataclass(frozen=True)
class _MeetingSeed:
    label: str
    title: str
    organizer: str
    state: str
    people: dict[str, tuple[str, str]]  # user label -> (role, presence)
    created_ago_ms: int
    optional: dict[str, Any]
    active_sessions: int = 0
    updated_ago_ms: int = 0


def _seeds(now_ms: int) -> list[_MeetingSeed]:
    """The seeded meetings; times are relative to `now_ms` so the demo always looks current."""
    soon = _round_up(now_ms + 2 * _HOUR_MS, 15 * _MINUTE_MS)
    return [
        _MeetingSeed(
            label="planning",
            title="Q3 Product Roadmap Planning",
            organizer="agent",
            state="scheduled",
            people={
                "agent": ("host", "invited"),
                "alice": ("participant", "invited"),
                "bob": ("participant", "invited"),
                "carol": ("observer", "invited"),
            },
            created_ago_ms=3 * _DAY_MS,
            updated_ago_ms=5 * _HOUR_MS,
            optional={
                "description": "Agree the Q3 roadmap: sequencing of transcript search and "
                "AI summaries, and the hiring plan for the support team.",
                "scheduledAt": soon,
                "duration": 3600,
                "participantCount": 4,
                "averageRating": 4.6,
                "streamRoomId": "stream_room_q3-planning",
                "webrtcEnabled": True,
            },
        ),
        _MeetingSeed(
            label="standup",
            title="Support Team Daily Standup",
            organizer="bob",
            state="active",
            people={
                "bob": ("host", "joined"),
                "agent": ("participant", "joined"),
                "alice": ("participant", "joined"),
                "carol": ("participant", "joined"),
                "dmitri": ("participant", "joined"),
            },
            created_ago_ms=14 * _DAY_MS,
            updated_ago_ms=40_000,
            active_sessions=3,
            optional={
                "description": "Yesterday's escalations, today's on-call rota and blockers.",
                "scheduledAt": now_ms - 20 * _MINUTE_MS,
                "duration": 900,
                "participantCount": 5,
                "streamRoomId": "stream_room_support-standup",
                "webrtcEnabled": True,
            },
        ),
        _MeetingSeed(
            label="retro",
            title="Sprint 42 Retrospective",
            organizer="alice",
            state="concluded",
            people={
                "alice": ("host", "left"),
                "agent": ("observer", "left"),
                "bob": ("participant", "left"),
                "carol": ("participant", "left"),
                "dmitri": ("participant", "left"),
                "erin": ("participant", "left"),
            },
            created_ago_ms=9 * _DAY_MS,
            updated_ago_ms=_DAY_MS + 2 * _HOUR_MS,
            optional={
                "description": "What went well, what did not, and the two changes we keep.",
                "scheduledAt": now_ms - _DAY_MS - 3 * _HOUR_MS,
                "duration": 2700,
                "participantCount": 6,
                "averageRating": 3.8,
                "streamRoomId": "stream_room_sprint-42-retro",
                "webrtcEnabled": True,
            },
        ),
        _MeetingSeed(
            label="cancelled",
            title="Vendor Security Review: Acme Transcription",
            organizer="carol",
            state="cancelled",
            people={
                "carol": ("host", "invited"),
                "agent": ("participant", "invited"),
                "erin": ("participant", "invited"),
            },
            created_ago_ms=6 * _DAY_MS,
            updated_ago_ms=2 * _DAY_MS,
            optional={
                "description": "Postponed until Acme sends its SOC 2 report.",
                "scheduledAt": _round_up(now_ms + 2 * _DAY_MS, _HOUR_MS),
                "duration": 1800,
                "participantCount": 3,
                "webrtcEnabled": False,
            },
        ),
        _MeetingSeed(
            label="minimal",
            title="Quick sync",
            organizer="dmitri",
            state="scheduled",
            people={"dmitri": ("host", "joined"), "agent": ("participant", "joined")},
            created_ago_ms=35 * _MINUTE_MS,
            optional={},
        ),
        _MeetingSeed(
            label="private",
            title="Board Prep (Confidential)",
            organizer="alice",
            state="scheduled",
            people={"alice": ("host", "invited"), "bob": ("participant", "invited")},
            created_ago_ms=2 * _DAY_MS,
            updated_ago_ms=_DAY_MS,
            optional={
                "description": "Numbers for the board pack. Leadership only.",
                "scheduledAt": _round_up(now_ms + _DAY_MS, _HOUR_MS),
                "duration": 5400,
                "participantCount": 2,
                "webrtcEnabled": True,
                "streamRoomId": "stream_room_board-prep",
            },
        ),
        _MeetingSeed(
            label="onboarding",
            title="Customer Onboarding: Northwind Traders",
            organizer="agent",
            state="active",
            people={"agent": ("host", "joined"), "erin": ("participant", "joined")},
            created_ago_ms=_DAY_MS + 4 * _HOUR_MS,
            updated_ago_ms=15_000,
            active_sessions=2,
            optional={
                "description": "Walk Northwind's admins through workspace setup and SSO.",
                "scheduledAt": now_ms - 8 * _MINUTE_MS,
                "duration": 2700,
                "participantCount": 2,
                "streamRoomId": "stream_room_northwind-onboarding",
                "webrtcEnabled": True,
            },
        ),
        _MeetingSeed(
            label="all-hands",
            title="Monthly All-Hands",
            organizer="carol",
            state="scheduled",
            people={
                "carol": ("host", "invited"),
                "agent": ("observer", "invited"),
                "alice": ("participant", "invited"),
                "bob": ("participant", "invited"),
                "dmitri": ("participant", "invited"),
                "erin": ("participant", "invited"),
            },
            created_ago_ms=20 * _DAY_MS,
            updated_ago_ms=3 * _DAY_MS,
            optional={
                "description": "Company update, product demos and open Q&A.",
                "scheduledAt": _round_up(now_ms + 6 * _DAY_MS, _HOUR_MS),
                "duration": 3600,
                "participantCount": 48,
                "streamRoomId": "stream_room_all-hands",
                "webrtcEnabled": True,
            },
        ),
        _MeetingSeed(
            label="interview",
            title="Candidate Interview: Senior Support Engineer",
            organizer="erin",
            state="concluded",
            people={"erin": ("host", "left"), "agent": ("participant", "left")},
            created_ago_ms=8 * _DAY_MS,
            updated_ago_ms=3 * _DAY_MS - 2 * _HOUR_MS,
            optional={
                "description": "Technical round: debugging a failed call recording.",
                "scheduledAt": now_ms - 3 * _DAY_MS,
                "duration": 3600,
                "participantCount": 3,
                "averageRating": 4.2,
                "webrtcEnabled": True,
            },
        ),
    ]


_USERS: Final = (
    ("agent", "Jordan Avery", "jordan.avery@support.connvo.test"),
    ("alice", "Alice Moreau", "alice.moreau@example.com"),
    ("bob", "Bob Okafor", "bob.okafor@example.com"),
    ("carol", "Carol Nguyen", "carol.nguyen@example.com"),
    ("dmitri", "Dmitri Volkov", "dmitri.volkov@example.com"),
    ("erin", "Erin Walsh", "erin.walsh@example.com"),
)

_ULID_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _round_up(ms: int, step: int) -> int:
    return -(-ms // step) * step


class World:
    """Users and meetings of one fake deployment. Not locked: FakeConnvo serialises access."""

    def __init__(self, *, seed: int, now_ms: int) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._spare_ids = random.Random(f"{seed}:spare-ids")
        self.users: dict[str, User] = {}
        for label, name, email in _USERS:
            self.users[label] = User(
                label=label,
                id=self._new_id("users"),
                sub=self._workos_user_id(),
                email=email,
                name=name,
            )
        self.unprovisioned_sub = self._workos_user_id()
        self.meetings: dict[str, MeetingRecord] = {}
        self.meeting_labels: dict[str, str] = {}
        for seed_meeting in _seeds(now_ms):
            record = self._build(seed_meeting, now_ms)
            self.meetings[record.id] = record
            self.meeting_labels[seed_meeting.label] = record.id
        # Live metrics: the last drift period applied per meeting, and the count it drifts around.
        self._drift_period: dict[str, int] = {}
        self._drift_centre: dict[str, int] = {}

    # -- building -----------------------------------------------------------------------------

    def _new_id(self, table: str) -> str:
        return encode_id(table, self._rng.randbytes(16))

    def _workos_user_id(self) -> str:
        # WorkOS user ids are "user_" + a ULID: 48-bit millisecond time, 80 random bits.
        millis = 1_717_200_000_000 + self._rng.randrange(10**10)
        number = millis << 80 | self._rng.getrandbits(80)
        ulid = "".join(_ULID_ALPHABET[(number >> (5 * (25 - i))) & 31] for i in range(26))
        return "user_" + ulid

    def _build(self, seed_meeting: _MeetingSeed, now_ms: int) -> MeetingRecord:
        created_at = now_ms - seed_meeting.created_ago_ms - self._rng.randrange(60_000)
        updated_at = max(created_at, now_ms - seed_meeting.updated_ago_ms)
        fields: dict[str, Any] = {
            "_id": self._new_id("meetings"),
            # Convex's system creation time is fractional milliseconds, a hair after the
            # createdAt the mutation stamped with Date.now().
            "_creationTime": created_at + round(self._rng.uniform(0.001, 0.999), 3),
            "organizerId": self.users[seed_meeting.organizer].id,
            "title": seed_meeting.title,
            "state": seed_meeting.state,
            "activeWebRTCSessions": seed_meeting.active_sessions,
            "createdAt": created_at,
            "updatedAt": updated_at,
            **seed_meeting.optional,
        }
        participants = {
            self.users[label].id: Participation(role, presence)
            for label, (role, presence) in seed_meeting.people.items()
        }
        return MeetingRecord(label=seed_meeting.label, fields=fields, participants=participants)

    # -- lookups ------------------------------------------------------------------------------

    def meeting_id(self, label: str) -> str:
        return self.meeting_labels[label]

    def meeting(self, label_or_id: str) -> MeetingRecord:
        meeting_id = self.meeting_labels.get(label_or_id, label_or_id)
        try:
            return self.meetings[meeting_id]
        except KeyError:
            raise KeyError(f"no meeting labelled or with id {label_or_id!r}") from None

    def user(self, label_sub_or_id: str) -> User:
        if label_sub_or_id in self.users:
            return self.users[label_sub_or_id]
        for user in self.users.values():
            if label_sub_or_id in (user.sub, user.id):
                return user
        raise KeyError(f"no user labelled, or with sub or id, {label_sub_or_id!r}")

    def user_by_sub(self, sub: str) -> User | None:
        return next((user for user in self.users.values() if user.sub == sub), None)

    def unknown_meeting_id(self) -> str:
        while (candidate := encode_id("meetings", self._spare_ids.randbytes(16))) in self.meetings:
            pass
        return candidate

    def users_table_id(self) -> str:
        return self.users["bob"].id

    # -- changes ------------------------------------------------------------------------------

    def update_meeting(self, label_or_id: str, fields: Mapping[str, Any]) -> MeetingRecord:
        record = self.meeting(label_or_id)
        for key, value in fields.items():
            if key in PER_CALLER_KEYS:
                raise ValueError(f"{key} depends on the caller: use set_participant()")
            if key == "_id":
                raise ValueError("a document's _id cannot change")
            if key not in VALUE_KEYS:
                raise ValueError(f"{key!r} is not a field of the getMeeting value")
            if value is None or value is DELETE:
                if key in REQUIRED_KEYS:
                    raise ValueError(f"{key} is required by the contract; use schema_drift")
                record.fields.pop(key, None)
            else:
                record.fields[key] = value
        return record

    def set_participant(
        self, label_or_id: str, user: str, *, role: str, presence: str
    ) -> Participation:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if presence not in PRESENCES:
            raise ValueError(f"presence must be one of {PRESENCES}")
        participation = Participation(role, presence)
        self.meeting(label_or_id).participants[self.user(user).id] = participation
        return participation

    def remove_participant(self, label_or_id: str, user: str) -> None:
        self.meeting(label_or_id).participants.pop(self.user(user).id, None)

    def drift_live_metrics(self, now_s: float) -> None:
        """Move active meetings' counters a little every few seconds, as real calls do."""
        period = int(now_s // _DRIFT_PERIOD_S)
        for record in self.meetings.values():
            fields = record.fields
            last = self._drift_period.get(record.id)
            self._drift_period[record.id] = period
            if fields.get("state") != "active" or last is None or period <= last:
                continue
            centre = self._drift_centre.setdefault(
                record.id, int(fields.get("participantCount", len(record.participants)))
            )
            # Only the latest few periods matter after a long pause.
            for step in range(max(last + 1, period - 11), period + 1):
                # Seeded per meeting and period so a replay of the demo drifts the same way.
                rng = random.Random(f"{self.seed}:{record.id}:{step}")
                count = int(fields.get("participantCount", centre))
                count = min(max(count + rng.choice((-1, 0, 0, 1)), max(1, centre - 2)), centre + 3)
                sessions = 0
                if fields.get("webrtcEnabled", True):
                    sessions = max(0, count - rng.choice((0, 0, 1, 2)))
                changed = sessions != fields["activeWebRTCSessions"]
                fields["activeWebRTCSessions"] = sessions
                if "participantCount" in fields:
                    changed = changed or count != fields["participantCount"]
                    fields["participantCount"] = count
                if changed:
                    fields["updatedAt"] = int(step * _DRIFT_PERIOD_S * 1000)

    # -- the query ----------------------------------------------------------------------------

    def get_meeting(self, identity: Mapping[str, Any] | None, args: Mapping[str, Any]) -> Outcome:
        """Run getMeeting for the holder of `identity` (verified token claims, None if none)."""
        invalid = _validate_args(args)
        if invalid is not None:
            return invalid
        meeting_id = args["meetingId"]
        if identity is None:
            return _unauthorized(NO_IDENTITY_MESSAGE)
        sub = identity.get("sub")
        if not isinstance(sub, str) or not sub:
            return _unauthorized(NO_SUBJECT_MESSAGE)
        caller = self.user_by_sub(sub)
        if caller is None:
            return _unauthorized(NOT_PROVISIONED_MESSAGE)
        record = self.meetings.get(meeting_id)
        if record is None:
            return Returned(None)
        participation = record.participants.get(caller.id)
        if participation is None:
            return Thrown(
                {
                    "code": "FORBIDDEN",
                    "message": NOT_PARTICIPANT_MESSAGE,
                    "statusCode": 403,
                    "metadata": {"meetingId": meeting_id, "userId": caller.id},
                }
            )
        return Returned(record.value_for(participation))

    def describe(self) -> dict[str, Any]:
        return {
            "users": {
                label: {"id": user.id, "sub": user.sub, "email": user.email, "name": user.name}
                for label, user in self.users.items()
            },
            "unprovisionedSub": self.unprovisioned_sub,
            "meetings": dict(self.meeting_labels),
            "usersTableId": self.users_table_id(),
        }


def _unauthorized(message: str) -> Thrown:
    return Thrown({"code": "UNAUTHORIZED", "message": message, "statusCode": 401})


def _validate_args(args: Mapping[str, Any]) -> Invalid | None:
    """Convex's check of `{meetingId: v.id("meetings")}`, with its wording."""
    if "meetingId" not in args:
        return Invalid(
            "ArgumentValidationError: Object is missing the required field `meetingId`. "
            "Consider wrapping the field validator in `v.optional(...)` if this is expected.\n\n"
            f"Object: {convex_repr(args)}\nValidator: {_ARGS_VALIDATOR}"
        )
    extra = sorted(key for key in args if key != "meetingId")
    if extra:
        return Invalid(
            f"ArgumentValidationError: Object contains extra field `{extra[0]}` that is not in "
            f"the validator.\n\nObject: {convex_repr(args)}\nValidator: {_ARGS_VALIDATOR}"
        )
    meeting_id = args["meetingId"]
    # An id of another table is as wrong as a malformed one: v.id() checks the table too.
    if not isinstance(meeting_id, str) or table_of(meeting_id) != "meetings":
        return Invalid(
            "ArgumentValidationError: Value does not match validator.\n"
            f"Path: .meetingId\nValue: {convex_repr(meeting_id)}\nValidator: {_ID_VALIDATOR}"
        )
    return None


_IDENTIFIER: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def convex_repr(value: Any) -> str:
    """A value as Convex prints it in validator errors: JSON, with bare object keys."""
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{key if _IDENTIFIER.fullmatch(str(key)) else json.dumps(str(key))}: "
            f"{convex_repr(item)}"
            for key, item in sorted(value.items())
        )
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(convex_repr(item) for item in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)
