"""What each lookup outcome means to an auditor: plain words and how serious it is, for the audit
pages and the overview. What an outcome means to the console itself (its status, whether polling
goes on) is connvo_admin/outcomes.py; this adds only the auditor's reading of it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from connvo_admin.outcomes import Outcome


class Severity(StrEnum):
    FOUND = "found"  # neutral: the lookup did what it was for
    REFUSED = "refused"  # Connvo or the console said no, as designed (blue-grey)
    CONNVO_FAILED = "connvo_failed"  # Connvo or the way to it broke (amber)
    CONSOLE_FAILED = "console_failed"  # the console itself is wrong (red)


@dataclass(frozen=True, slots=True)
class Meaning:
    label: str
    severity: Severity

    @property
    def is_failure(self) -> bool:
        return self.severity in (Severity.CONNVO_FAILED, Severity.CONSOLE_FAILED)


MEANINGS: dict[Outcome, Meaning] = {
    Outcome.FOUND: Meaning("Found", Severity.FOUND),
    Outcome.NOT_VISIBLE: Meaning("Not visible to them (not a participant)", Severity.REFUSED),
    Outcome.NOT_FOUND: Meaning("No such meeting", Severity.REFUSED),
    Outcome.INVALID_ID: Meaning("Not a meeting ID", Severity.REFUSED),
    Outcome.TOKEN_REJECTED: Meaning("Connvo refused their token", Severity.REFUSED),
    Outcome.NOT_PROVISIONED: Meaning("No Connvo user for their token", Severity.REFUSED),
    Outcome.SESSION_ENDED: Meaning("Connvo session ended", Severity.REFUSED),
    Outcome.CONNVO_ERROR: Meaning("Connvo refused the lookup", Severity.REFUSED),
    Outcome.NO_TOKEN: Meaning("Console refused: no token for the deployment", Severity.REFUSED),
    Outcome.UNKNOWN_DEPLOYMENT: Meaning("Console refused: unknown deployment", Severity.REFUSED),
    Outcome.LOOKUP_LIMIT: Meaning("Console refused: too many lookups a minute", Severity.REFUSED),
    Outcome.RATE_LIMITED: Meaning("Connvo failed: rate limited", Severity.CONNVO_FAILED),
    Outcome.SERVER_ERROR: Meaning("Connvo failed: server error", Severity.CONNVO_FAILED),
    Outcome.OVERLOADED: Meaning("Connvo failed: overloaded", Severity.CONNVO_FAILED),
    Outcome.TIMEOUT: Meaning("Connvo failed: no answer in time", Severity.CONNVO_FAILED),
    Outcome.UNREACHABLE: Meaning("Connvo failed: unreachable", Severity.CONNVO_FAILED),
    Outcome.BAD_RESPONSE: Meaning("Connvo failed: not Connvo's answer", Severity.CONNVO_FAILED),
    Outcome.AUTH_UNAVAILABLE: Meaning("Sign-in service failed", Severity.CONNVO_FAILED),
    Outcome.SCHEMA_MISMATCH: Meaning(
        "Console failed: unexpected meeting data", Severity.CONSOLE_FAILED
    ),
    Outcome.BAD_REQUEST: Meaning(
        "Console failed: request refused by Connvo", Severity.CONSOLE_FAILED
    ),
    Outcome.AUDIT_UNAVAILABLE: Meaning(
        "Console failed: audit log unavailable", Severity.CONSOLE_FAILED
    ),
}


def meaning(outcome: str) -> Meaning:
    """Anything not in the table (an outcome from a newer or older console) counts as a failure
    until someone names it: better looked at than hidden."""
    return MEANINGS.get(outcome) or Meaning(outcome.replace("_", " "), Severity.CONSOLE_FAILED)
