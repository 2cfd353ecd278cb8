"""What each lookup outcome means to an auditor: plain words and how serious it is. The one place
the audit pages, the overview and the flags read this from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


MEANINGS: dict[str, Meaning] = {
    "found": Meaning("Found", Severity.FOUND),
    "not_visible": Meaning("Not visible to them (not a participant)", Severity.REFUSED),
    "not_found": Meaning("No such meeting", Severity.REFUSED),
    "invalid_id": Meaning("Not a meeting ID", Severity.REFUSED),
    "token_rejected": Meaning("Connvo refused their token", Severity.REFUSED),
    "not_provisioned": Meaning("No Connvo user for their token", Severity.REFUSED),
    "session_ended": Meaning("Connvo session ended", Severity.REFUSED),
    "connvo_error": Meaning("Connvo refused the lookup", Severity.REFUSED),
    "no_token": Meaning("Console refused: no token for the deployment", Severity.REFUSED),
    "unknown_deployment": Meaning("Console refused: unknown deployment", Severity.REFUSED),
    "lookup_limit": Meaning("Console refused: too many lookups a minute", Severity.REFUSED),
    "rate_limited": Meaning("Connvo failed: rate limited", Severity.CONNVO_FAILED),
    "server_error": Meaning("Connvo failed: server error", Severity.CONNVO_FAILED),
    "overloaded": Meaning("Connvo failed: overloaded", Severity.CONNVO_FAILED),
    "timeout": Meaning("Connvo failed: no answer in time", Severity.CONNVO_FAILED),
    "unreachable": Meaning("Connvo failed: unreachable", Severity.CONNVO_FAILED),
    "bad_response": Meaning("Connvo failed: not Connvo's answer", Severity.CONNVO_FAILED),
    "auth_unavailable": Meaning("Sign-in service failed", Severity.CONNVO_FAILED),
    "schema_mismatch": Meaning("Console failed: unexpected meeting data", Severity.CONSOLE_FAILED),
    "bad_request": Meaning("Console failed: request refused by Connvo", Severity.CONSOLE_FAILED),
    "audit_unavailable": Meaning("Console failed: audit log unavailable", Severity.CONSOLE_FAILED),
}


def meaning(outcome: str) -> Meaning:
    """Anything not in the table (an outcome from a newer or older console) counts as a failure
    until someone names it: better looked at than hidden."""
    return MEANINGS.get(outcome) or Meaning(outcome.replace("_", " "), Severity.CONSOLE_FAILED)
