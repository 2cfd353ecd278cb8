"""How a lookup of a meeting ended, and what each ending means to the console: one table, read by
the meeting page (its HTTP status and what the agent can do), its live refresh (whether polling
goes on), the audit log (which outcomes it can hold) and `connvo_lookup --json` (the kinds).

Shared by meetings/ and audit/, so it depends on nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class Outcome(StrEnum):
    """How a lookup ended: one stable value per failure mode (CLI `--json` kinds, audit log)."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    NOT_VISIBLE = "not_visible"
    INVALID_ID = "invalid_id"
    UNKNOWN_DEPLOYMENT = "unknown_deployment"
    NO_TOKEN = "no_token"
    SESSION_ENDED = "session_ended"
    AUTH_UNAVAILABLE = "auth_unavailable"
    TOKEN_REJECTED = "token_rejected"
    NOT_PROVISIONED = "not_provisioned"
    CONNVO_ERROR = "connvo_error"
    SERVER_ERROR = "server_error"
    BAD_REQUEST = "bad_request"
    RATE_LIMITED = "rate_limited"
    LOOKUP_LIMIT = "lookup_limit"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    BAD_RESPONSE = "bad_response"
    SCHEMA_MISMATCH = "schema_mismatch"
    # The lookup could not be written to the audit log, so it showed nothing (and is in no log).
    AUDIT_UNAVAILABLE = "audit_unavailable"

    @property
    def handling(self) -> Handling:
        return HANDLING[self]

    @property
    def in_plain_words(self) -> str:
        return IN_PLAIN_WORDS[self]


class LiveStatus(StrEnum):
    """What the meeting page's live refresh does next."""

    LIVE = "live"  # polling at the normal pace
    FAILING = "failing"  # the lookup failed; polling again, slower
    ENDED = "ended"  # the meeting concluded or was cancelled: nothing more will change
    TOKEN = "token"  # the agent must update their token: polling again only costs calls
    GONE = "gone"  # the meeting is no longer visible to the agent


class Tone(StrEnum):
    """How the problem is shown: `info` is calm (nothing is broken), `error` is red."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Handling:
    page_status: int  # the console's own answer; a gateway-style code when Connvo failed
    live: LiveStatus  # what polling does after a refresh that ended so (FOUND: see live.py)
    tone: Tone = Tone.ERROR
    # The partial of meetings/meeting_detail.html that says what the agent can do.
    next_steps: str = "retry"
    # Whether "Details for escalation" starts open (closed where escalating is the last resort).
    escalation_open: bool = True
    # Whether the outcome is ever written to the audit log (its filters offer only these).
    recorded: bool = True


_TOKEN, _GONE, _FAILING = LiveStatus.TOKEN, LiveStatus.GONE, LiveStatus.FAILING
HANDLING: dict[Outcome, Handling] = {
    Outcome.FOUND: Handling(200, LiveStatus.LIVE, next_steps=""),
    Outcome.NOT_FOUND: Handling(
        404, _GONE, Tone.INFO, next_steps="check-id", escalation_open=False
    ),
    Outcome.NOT_VISIBLE: Handling(
        403, _GONE, Tone.INFO, next_steps="ask-host", escalation_open=False
    ),
    Outcome.INVALID_ID: Handling(400, _GONE, Tone.INFO, next_steps="correct-id"),
    Outcome.UNKNOWN_DEPLOYMENT: Handling(404, _GONE, Tone.INFO, next_steps="pick-deployment"),
    Outcome.NO_TOKEN: Handling(403, _TOKEN, Tone.INFO, next_steps="add-token"),
    Outcome.SESSION_ENDED: Handling(403, _TOKEN, Tone.WARNING, next_steps="reconnect"),
    Outcome.AUTH_UNAVAILABLE: Handling(502, _FAILING),
    Outcome.TOKEN_REJECTED: Handling(403, _TOKEN, Tone.WARNING, next_steps="update-token"),
    Outcome.NOT_PROVISIONED: Handling(403, _TOKEN, Tone.WARNING, next_steps="check-token"),
    Outcome.CONNVO_ERROR: Handling(502, _FAILING),
    Outcome.SERVER_ERROR: Handling(502, _FAILING),
    Outcome.BAD_REQUEST: Handling(502, _FAILING),
    Outcome.RATE_LIMITED: Handling(429, _FAILING, Tone.WARNING),
    Outcome.LOOKUP_LIMIT: Handling(429, _FAILING, Tone.WARNING, next_steps="wait"),
    Outcome.OVERLOADED: Handling(503, _FAILING),
    Outcome.TIMEOUT: Handling(504, _FAILING),
    Outcome.UNREACHABLE: Handling(502, _FAILING),
    Outcome.BAD_RESPONSE: Handling(502, _FAILING),
    Outcome.SCHEMA_MISMATCH: Handling(502, _FAILING),
    Outcome.AUDIT_UNAVAILABLE: Handling(503, _FAILING, next_steps="", recorded=False),
}


# How each ending reads in a list (the start page's recent lookups): a few plain words.
IN_PLAIN_WORDS: dict[Outcome, str] = {
    Outcome.FOUND: "found",
    Outcome.NOT_FOUND: "not found",
    Outcome.NOT_VISIBLE: "you are not a participant",
    Outcome.INVALID_ID: "not a meeting ID",
    Outcome.UNKNOWN_DEPLOYMENT: "unknown deployment",
    Outcome.NO_TOKEN: "no token saved",
    Outcome.SESSION_ENDED: "Connvo session ended",
    Outcome.AUTH_UNAVAILABLE: "session could not be renewed",
    Outcome.TOKEN_REJECTED: "token not accepted",
    Outcome.NOT_PROVISIONED: "Connvo account not set up",
    Outcome.CONNVO_ERROR: "Connvo reported an error",
    Outcome.SERVER_ERROR: "Connvo failed",
    Outcome.BAD_REQUEST: "Connvo refused the request",
    Outcome.RATE_LIMITED: "Connvo was limiting lookups",
    Outcome.LOOKUP_LIMIT: "the console's lookup limit",
    Outcome.OVERLOADED: "Connvo overloaded",
    Outcome.TIMEOUT: "Connvo did not answer in time",
    Outcome.UNREACHABLE: "Connvo unreachable",
    Outcome.BAD_RESPONSE: "unexpected answer from Connvo",
    Outcome.SCHEMA_MISMATCH: "unexpected meeting data",
    Outcome.AUDIT_UNAVAILABLE: "not recorded",
}


def recorded_outcomes() -> list[Outcome]:
    """The outcomes an audit entry can hold, in the enum's order."""
    return [outcome for outcome in Outcome if HANDLING[outcome].recorded]


class LookupFailed(Exception):
    """A lookup that did not show a meeting. `message` is written for a support agent.

    Each subclass lives beside the code that raises it (the Connvo client, the credentials, the
    console's own limit, the audit write); `outcome` says how the lookup ended."""

    outcome: ClassVar[Outcome]
    title: ClassVar[str] = "Connvo could not answer"

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        http_status: int | None = None,
        latency_ms: int | None = None,
        attempts: int = 0,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.http_status = http_status
        self.latency_ms = latency_ms
        self.attempts = attempts
        # Technical detail for escalation (Connvo's own code/message); never contains the token.
        self.detail = detail

    @property
    def kind(self) -> str:
        return self.outcome.value

    @property
    def handling(self) -> Handling:
        return HANDLING[self.outcome]
