"""How a lookup of a meeting ended, and everything the console knows about each ending, in one
table: the agent's heading and the one short label every surface shows (the meeting page, the
triage table and its CSV, the start page's recent lookups, the audit log's badges and filter),
worded for the deployment's kind where that changes them (an account to connect rather than a
token to paste), how serious it is to an auditor, the page's HTTP status, what the live refresh
does next and the triage table's group.

Shared by meetings/ and audit/, so it depends on nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    def label(self) -> str:
        return HANDLING[self].label


class LiveStatus(StrEnum):
    """What the meeting page's live refresh does next."""

    LIVE = "live"  # polling at the normal pace
    FAILING = "failing"  # the lookup failed; polling again, slower
    ENDED = "ended"  # the meeting concluded or was cancelled: nothing more will change
    TOKEN = "token"  # the agent must update their token: polling again only costs calls
    GONE = "gone"  # the meeting is no longer visible to the agent

    @property
    def keeps_going(self) -> bool:
        """Whether the page keeps asking (polling) or listening (pushed answers) after this."""
        return self in (LiveStatus.LIVE, LiveStatus.FAILING)


class Tone(StrEnum):
    """How the problem is shown to the agent: `info` is calm (nothing is broken), `error` red."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Severity(StrEnum):
    """How an auditor reads an outcome (the colour of its badge on the audit pages)."""

    FOUND = "found"  # neutral: the lookup did what it was for
    REFUSED = "refused"  # Connvo or the console said no, as designed (blue-grey)
    CONNVO_FAILED = "connvo_failed"  # Connvo or the way to it broke (amber)
    CONSOLE_FAILED = "console_failed"  # the console itself is wrong (red)

    @property
    def words(self) -> str:
        """The colour's meaning in words, for those who do not see the colour."""
        return {
            Severity.FOUND: "found",
            Severity.REFUSED: "refused as designed",
            Severity.CONNVO_FAILED: "Connvo failed",
            Severity.CONSOLE_FAILED: "the console failed",
        }[self]


class TableGroup(StrEnum):
    """The triage table's group for a row whose lookup ended so (a found meeting is grouped by
    its state instead: meetings/triage.py)."""

    BY_STATE = ""
    NOT_VISIBLE = "not_visible"
    NOT_FOUND = "not_found"
    INVALID_ID = "invalid_id"
    # A watch list's meeting on a deployment the console no longer has (a table is of one that
    # it has).
    UNKNOWN_DEPLOYMENT = "unknown_deployment"
    TOKEN = "token"
    LOOKUP_LIMIT = "lookup_limit"
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        """Whether the live table stops asking for a row of this group: exactly when the page of
        a meeting whose lookup ended so stops polling (its outcome's `live`, the one home of that
        decision; a group's outcomes all agree, or this module does not load). A found meeting's
        row (BY_STATE) goes by its state instead, as its page does."""
        return _SETTLED[self]


@dataclass(frozen=True, slots=True)
class Handling:
    # The one short label of the outcome, on every surface ("Not a participant").
    label: str
    # The heading of the meeting page that ended so, written for the agent.
    title: str
    severity: Severity
    page_status: int  # the console's own answer; a gateway-style code when Connvo failed
    live: LiveStatus  # what polling does after a refresh that ended so (FOUND: see live.py)
    table_group: TableGroup = TableGroup.FAILED
    tone: Tone = Tone.ERROR
    # The partial of meetings/meeting_detail.html that says what the agent can do.
    next_steps: str = "retry"
    # Whether "Details for escalation" starts open (closed where escalating is the last resort).
    escalation_open: bool = True
    # Whether the outcome is ever written to the audit log (its filters offer only these).
    recorded: bool = True
    # Beside "HTTP status from Connvo: 200" in the escalation details: Convex answers a function's
    # outcome, an error too, with 200, so the status alone would read as success.
    answered_200: str = "Connvo answered, but with an error in its answer"
    # The label and heading where agents connect their Connvo account (WorkOS) instead of pasting
    # a token, for an outcome that reads otherwise there; "" where it reads the same.
    connected_label: str = ""
    connected_title: str = ""
    # And the agent's next step there, where it differs (nothing to paste: reconnect instead).
    connected_next_steps: str = ""

    def worded_for(self, *, connects_accounts: bool) -> Handling:
        """This handling in the words of a deployment whose agents connect their Connvo account
        (`connects_accounts`), or paste a token: meetings/connvo.py `outcome_handling` says which
        a deployment is."""
        if not connects_accounts:
            return self
        return replace(
            self,
            label=self.connected_label or self.label,
            title=self.connected_title or self.title,
            next_steps=self.connected_next_steps or self.next_steps,
        )

    @property
    def is_failure(self) -> bool:
        """Something broke (as opposed to a lookup that found, or was refused as designed)."""
        return self.severity in (Severity.CONNVO_FAILED, Severity.CONSOLE_FAILED)


_REFUSED, _CONNVO, _CONSOLE = Severity.REFUSED, Severity.CONNVO_FAILED, Severity.CONSOLE_FAILED
_TOKEN, _GONE, _FAILING = LiveStatus.TOKEN, LiveStatus.GONE, LiveStatus.FAILING
_INFO, _WARNING = Tone.INFO, Tone.WARNING
# A table, one outcome a row, read across: kept out of the formatter.
# fmt: off
HANDLING: dict[Outcome, Handling] = {
    Outcome.FOUND: Handling(
        "Found", "Meeting found", Severity.FOUND, 200, LiveStatus.LIVE,
        TableGroup.BY_STATE, next_steps="",
    ),
    Outcome.NOT_FOUND: Handling(
        "No such meeting", "Meeting not found", _REFUSED, 404, _GONE,
        TableGroup.NOT_FOUND, _INFO, next_steps="check-id", escalation_open=False,
    ),
    Outcome.NOT_VISIBLE: Handling(
        "Not a participant", "You are not a participant of this meeting", _REFUSED, 403, _GONE,
        TableGroup.NOT_VISIBLE, _INFO, next_steps="ask-host", escalation_open=False,
    ),
    Outcome.INVALID_ID: Handling(
        "Not a meeting ID", "That is not a meeting ID", _REFUSED, 400, _GONE,
        TableGroup.INVALID_ID, _INFO, next_steps="correct-id",
    ),
    Outcome.UNKNOWN_DEPLOYMENT: Handling(
        "Unknown deployment", "Unknown deployment", _REFUSED, 404, _GONE,
        TableGroup.UNKNOWN_DEPLOYMENT, _INFO, next_steps="pick-deployment",
    ),
    Outcome.NO_TOKEN: Handling(
        "No token saved", "Connvo token needed", _REFUSED, 403, _TOKEN,
        TableGroup.TOKEN, _INFO, next_steps="add-token",
        connected_label="Account not connected", connected_title="Connvo account not connected",
    ),
    Outcome.SESSION_ENDED: Handling(
        "Connvo session ended", "Your Connvo session has ended", _REFUSED, 403, _TOKEN,
        TableGroup.TOKEN, _WARNING, next_steps="reconnect",
    ),
    Outcome.AUTH_UNAVAILABLE: Handling(
        "Session could not be renewed", "Your Connvo session could not be renewed", _CONNVO,
        502, _FAILING,
    ),
    Outcome.TOKEN_REJECTED: Handling(
        "Token not accepted", "Your Connvo token was not accepted", _REFUSED, 403, _TOKEN,
        TableGroup.TOKEN, _WARNING, next_steps="update-token",
        connected_label="Connection not accepted",
        connected_title="Connvo did not accept your connected account",
        connected_next_steps="reconnect",
    ),
    Outcome.NOT_PROVISIONED: Handling(
        "No Connvo user for the token", "Your Connvo account is not set up", _REFUSED, 403,
        _TOKEN, TableGroup.TOKEN, _WARNING, next_steps="check-token",
        connected_label="No Connvo user for the account", connected_next_steps="reconnect",
    ),
    Outcome.CONNVO_ERROR: Handling(
        "Connvo refused the lookup", "Connvo reported an error", _REFUSED, 502, _FAILING,
    ),
    Outcome.SERVER_ERROR: Handling(
        "Connvo server error", "Connvo had an internal error", _CONNVO, 502, _FAILING,
    ),
    Outcome.BAD_REQUEST: Handling(
        "Console sent a bad request", "Connvo refused the request", _CONSOLE, 502, _FAILING,
    ),
    Outcome.RATE_LIMITED: Handling(
        "Connvo's rate limit", "Connvo is limiting lookups", _CONNVO, 429, _FAILING,
        tone=_WARNING,
    ),
    Outcome.LOOKUP_LIMIT: Handling(
        "Not asked: lookup limit", "Too many lookups from your account", _REFUSED, 429, _FAILING,
        TableGroup.LOOKUP_LIMIT, _WARNING, next_steps="wait",
    ),
    Outcome.OVERLOADED: Handling(
        "Connvo overloaded", "Connvo is overloaded", _CONNVO, 503, _FAILING,
    ),
    Outcome.TIMEOUT: Handling(
        "No answer in time", "Connvo did not answer in time", _CONNVO, 504, _FAILING,
    ),
    Outcome.UNREACHABLE: Handling(
        "Connvo unreachable", "Connvo cannot be reached", _CONNVO, 502, _FAILING,
    ),
    Outcome.BAD_RESPONSE: Handling(
        "Not Connvo's answer", "Connvo sent something unexpected", _CONNVO, 502, _FAILING,
        answered_200="Connvo answered, but not in Connvo's format",
    ),
    Outcome.SCHEMA_MISMATCH: Handling(
        "Unexpected meeting data", "Connvo's answer did not match the contract", _CONSOLE, 502,
        _FAILING, answered_200="Connvo answered, but with something that is not a meeting",
    ),
    Outcome.AUDIT_UNAVAILABLE: Handling(
        "Not recorded", "The lookup could not be recorded", _CONSOLE, 503, _FAILING,
        next_steps="", recorded=False,
    ),
}
# fmt: on


def _settled_groups() -> dict[TableGroup, bool]:
    """Each table group's `settled`, from its outcomes' live handling. A group whose outcomes
    disagree (one stops the meeting page, another keeps it polling) could not be settled for one
    and asked again for the other (the page sends back only its rows' groups): refused here, so
    the meeting page and the table never part ways."""
    settled: dict[TableGroup, bool] = {}
    for outcome, handling in HANDLING.items():
        stops = not handling.live.keeps_going
        if settled.setdefault(handling.table_group, stops) != stops:
            raise ValueError(
                f"{outcome}: its live handling ({handling.live}) does not match the other "
                f"outcomes of the table group {handling.table_group!r}"
            )
    if empty := set(TableGroup) - settled.keys():
        raise ValueError(f"table groups without an outcome: {sorted(empty)}")
    return settled


_SETTLED = _settled_groups()


def describe(outcome: str) -> Handling:
    """The handling of an outcome as stored (the audit log's column). One the console does not
    know (written by a newer or older console) counts as a console failure until someone names
    it: better looked at than hidden."""
    try:
        return HANDLING[Outcome(outcome)]
    except ValueError:
        words = str(outcome).replace("_", " ").strip() or repr(outcome)
        words = words[:1].upper() + words[1:]
        return Handling(words, words, _CONSOLE, 502, _FAILING)


def recorded_outcomes() -> list[Outcome]:
    """The outcomes an audit entry can hold, in the enum's order."""
    return [outcome for outcome in Outcome if HANDLING[outcome].recorded]


class LookupFailed(Exception):
    """A lookup that did not show a meeting. `message` is written for a support agent.

    Each subclass lives beside the code that raises it (the Connvo client, the credentials, the
    console's own limit, the audit write) and names only its `outcome`: its heading, label and
    handling come from the table above (a subclass may choose its words there: `worded_for`)."""

    outcome: ClassVar[Outcome]
    # Whether the failure is of a deployment whose agents connect their Connvo account instead of
    # pasting a token: its handling is then in that deployment's words (`worded_for`).
    connects_accounts: bool = False

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        http_status: int | None = None,
        latency_ms: int | None = None,
        attempts: int = 0,
        detail: str = "",
        retry_after: float | None = None,
        connects_accounts: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if connects_accounts is not None:
            # Said of this failure (its deployment's kind), over its class's.
            self.connects_accounts = connects_accounts
        self.request_id = request_id
        self.http_status = http_status
        self.latency_ms = latency_ms
        self.attempts = attempts
        # Technical detail for escalation (Connvo's own code/message); never contains the token.
        self.detail = detail
        # Seconds the refusal asked us to wait before asking again (Connvo's Retry-After, the
        # console's own limit's window), when it said: a live page waits at least that long.
        self.retry_after = retry_after

    def __reduce__(self):
        # Pickled as it is (the push relay passes failures to push workers: meetings/relay.py),
        # not through __init__, whose arguments differ from one subclass to the next.
        return _rebuilt, (type(self), self.args, self.__dict__)

    @property
    def kind(self) -> str:
        return self.outcome.value

    @property
    def handling(self) -> Handling:
        return HANDLING[self.outcome].worded_for(connects_accounts=self.connects_accounts)

    @property
    def title(self) -> str:
        return self.handling.title

    @property
    def label(self) -> str:
        return self.handling.label


def _rebuilt(cls: type[LookupFailed], args: tuple, state: dict) -> LookupFailed:
    """A pickled LookupFailed back, with its message and attributes as they were."""
    failure = cls.__new__(cls)
    Exception.__init__(failure, *args)
    failure.__dict__.update(state)
    return failure
