"""Misbehaviour switches: the ways a real Convex deployment (or what stands in front of it) fails.

Each switch is a kind plus options, optionally limited to its next `times` uses. The server asks
for a kind with `take()` at the point where that failure would happen; a switch used up turns off.

The `workos_*` kinds hit only the fake WorkOS paths (/user_management/..., /sso/jwks/...), the
`sync_*` kinds only the sync WebSocket (/api/sync), and the others only Connvo's HTTP API: one can
fail while the others keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

_NO_OPTIONS: Final[frozenset[str]] = frozenset()
# kind -> the options it accepts besides `times`.
OPTIONS: Final[dict[str, frozenset[str]]] = {
    "slow": frozenset({"delay"}),
    # The answer written a byte every `delay` seconds, its status line and headers too (as a
    # struggling proxy may): each byte in time, the whole far past any read timeout.
    "trickle": frozenset({"delay"}),
    "reset": _NO_OPTIONS,
    "status": frozenset({"status", "code", "message", "retry_after"}),
    "overloaded": frozenset({"message", "retry_after"}),
    "garbage": _NO_OPTIONS,
    "proxy_error": _NO_OPTIONS,
    "schema_drift": frozenset({"field", "value", "drop"}),
    "expired_tokens": _NO_OPTIONS,
    "redact": _NO_OPTIONS,
    "status_560": _NO_OPTIONS,
    # WorkOS only: answer late; drop the connection unanswered (nothing done: a refresh token
    # stays unspent); answer 429/5xx; or do the work (a refresh token is spent) and then drop the
    # connection, as when the reply is lost on the way back.
    "workos_slow": frozenset({"delay"}),
    "workos_down": _NO_OPTIONS,
    "workos_error": frozenset({"status", "message", "retry_after"}),
    "workos_reply_lost": _NO_OPTIONS,
    # WorkOS only: a 200 whose body is an HTML page (a proxy or captive portal), nothing done.
    "workos_garbage": _NO_OPTIONS,
    # Sync WebSocket only. sync_refuse answers the upgrade with an HTTP error (503 unless
    # status=); sync_silent accepts it and then never sends a thing (no answers, no heartbeat);
    # sync_drop resets the connection instead of sending the next message, and sync_garbage
    # sends a text frame that is not JSON in its place; sync_reject_token answers Authenticate
    # with AuthError whatever the token. One use each: an upgrade, a message, a token.
    "sync_refuse": frozenset({"status"}),
    "sync_silent": _NO_OPTIONS,
    "sync_drop": _NO_OPTIONS,
    "sync_garbage": _NO_OPTIONS,
    "sync_reject_token": _NO_OPTIONS,
}
KINDS: Final = frozenset(OPTIONS)


@dataclass
class Switch:
    kind: str
    options: dict[str, Any]
    remaining: int | None  # None: until reset

    @property
    def key(self) -> tuple[str, str | None]:
        # Drifts of different fields stack; any other kind replaces its earlier switch.
        return self.kind, self.options.get("field") if self.kind == "schema_drift" else None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.options, "times": self.remaining}


def make_switch(kind: str, options: dict[str, Any]) -> Switch:
    """A checked switch; ValueError names what is wrong, so a typo in a test fails loudly."""
    if kind not in OPTIONS:
        raise ValueError(f"unknown misbehaviour {kind!r}; known: {', '.join(sorted(KINDS))}")
    options = dict(options)
    times = options.pop("times", None)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError("times must be a positive integer or None")
    unknown = set(options) - OPTIONS[kind]
    if unknown:
        raise ValueError(f"{kind} takes no option {', '.join(sorted(unknown))}")
    if kind in ("slow", "workos_slow", "trickle"):
        delay = options.get("delay")
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            raise ValueError(f"{kind} needs delay=<seconds>")
    if kind == "status":
        status = options.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("status needs status=<400..599>")
    if kind == "sync_refuse":
        status = options.setdefault("status", 503)
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError("sync_refuse needs status=<400..599>")
    if kind == "workos_error":
        status = options.setdefault("status", 500)
        if not isinstance(status, int) or not (status == 429 or 500 <= status <= 599):
            raise ValueError("workos_error needs status=<429 or 500..599>")
    if kind == "schema_drift":
        if not isinstance(options.get("field"), str):
            raise ValueError("schema_drift needs field=<name>")
        if options.get("drop"):
            options.pop("value", None)
            options["drop"] = True
        elif "value" not in options:
            raise ValueError("schema_drift needs value=<new value> or drop=True")
        else:
            options.pop("drop", None)
    return Switch(kind=kind, options=options, remaining=times)


class Behaviour:
    """The switches currently on. Not locked: FakeConnvo serialises access."""

    def __init__(self) -> None:
        self._switches: list[Switch] = []

    def add(self, switch: Switch) -> None:
        self._switches = [s for s in self._switches if s.key != switch.key]
        self._switches.append(switch)

    def clear(self) -> None:
        self._switches.clear()

    def take(self, kind: str) -> Switch | None:
        """The first switch of `kind` that is on, counting this as one of its uses."""
        for switch in self._switches:
            if switch.kind == kind:
                self._use(switch)
                return switch
        return None

    def take_all(self, kind: str) -> list[Switch]:
        taken = [switch for switch in self._switches if switch.kind == kind]
        for switch in taken:
            self._use(switch)
        return taken

    def is_on(self, kind: str) -> bool:
        return any(switch.kind == kind for switch in self._switches)

    def describe(self) -> list[dict[str, Any]]:
        return [switch.describe() for switch in self._switches]

    def _use(self, switch: Switch) -> None:
        if switch.remaining is None:
            return
        switch.remaining -= 1
        if switch.remaining <= 0:
            self._switches.remove(switch)
