"""Seeded activity for the overview and "worth a look" tests: a normal support team, and one
insider probing meetings they are not part of."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TEAM = ["alice", "bob", "carol"]
BUSY = "grace"  # 72 lookups every day: busy, not unusual
NEWCOMER = "heidi"  # started today: no history to compare with
INSIDER = "mallory"


def lookup(name: str, at: datetime, meeting: str, *, outcome: str = "found", via: str = "page"):
    return {
        "at": at,
        "actor_username": name,
        "action": "lookup",
        "via": via,
        "deployment": "prod",
        "meeting_id": meeting,
        "outcome": outcome,
        "http_status": 200,
        "client_ip": "10.0.0.9",
        "user_agent": "pytest",
    }


def _workday(rng: random.Random, name: str, day: datetime, per_hour: int, hours: range):
    """A day of ordinary support work: a few meetings a customer asked about, mostly found,
    sometimes one the agent is not part of, and live refreshes while a page is open."""
    for hour in hours:
        for n in range(per_hour):
            at = day + timedelta(hours=hour, minutes=n * 60 // per_hour, seconds=rng.randrange(50))
            meeting = f"{name}-meeting-{rng.randrange(40):02d}".ljust(32, "x")
            outcome = "not_visible" if rng.random() < 0.05 else "found"
            yield lookup(name, at, meeting, outcome=outcome)
            if outcome == "found" and rng.random() < 0.2:
                yield lookup(name, at + timedelta(seconds=5), meeting, via="refresh")


def team_activity(now: datetime = NOW, *, insider: bool = True) -> list[dict]:
    """Thirty-one days of the team's work up to `now`; with `insider`, mallory also spends two
    night hours of the last day looking up meetings of strangers."""
    rng = random.Random(15)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    entries = []
    for days_back in range(31, -1, -1):
        day = today - timedelta(days=days_back)
        for name in [*TEAM, INSIDER]:
            entries.extend(_workday(rng, name, day, 3, range(8, 17)))
        entries.extend(_workday(rng, BUSY, day, 8, range(8, 17)))
        if days_back == 0:
            entries.extend(_workday(rng, NEWCOMER, day, 3, range(8, 12)))
    if insider:
        night = today + timedelta(hours=2)
        for n in range(150):
            at = night + timedelta(seconds=n * 45)
            outcome = "not_visible" if n % 5 else "found"
            entries.append(lookup(INSIDER, at, f"stranger-{n:03d}".ljust(32, "z"), outcome=outcome))
    return sorted((entry for entry in entries if entry["at"] < now), key=lambda e: e["at"])
