"""Realistic audit entries in bulk, for trying the audit pages and measuring them at scale.

Seeded entries are real links of the chain (each MAC computed over the one before, under the
chain head lock), so `audit_verify` passes over them like over any other entry. They are told
apart by their staff names (`seed-agent-0001`, …) and `actor` being NULL. Timestamps rise with
the id across the `days` before now."""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from connvo_admin.outcomes import Outcome

from . import partitions
from .chain import CHAINED_FIELDS, compute_mac, head_key, lock_head
from .models import Action, AuditEntry, Via

SEED_PREFIX = "seed-agent-"
# The most `seed` makes up: its staff names and meeting IDs are made up front and held in memory
# (10 M meeting IDs take about 1 GB), and its days back each get a monthly partition (PostgreSQL).
MOST_STAFF = 1_000_000
MOST_MEETINGS = 10_000_000
MOST_DAYS = 3_653  # ten years
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0",
]
# (value, weight): roughly what a support team's week looks like.
ACTIONS = [
    (Action.LOOKUP, 930),
    (Action.SIGN_IN, 30),
    (Action.SIGN_OUT, 20),
    (Action.SIGN_IN_FAILED, 7),
    (Action.PERMISSION_DENIED, 4),
    (Action.TOKEN_SAVED, 5),
    (Action.TOKEN_REPLACED, 3),
    (Action.TOKEN_REMOVED, 1),
]
VIAS = [(Via.REFRESH, 60), (Via.PAGE, 37), (Via.CLI, 3)]
OUTCOMES = [
    (Outcome.FOUND, 850),
    (Outcome.NOT_VISIBLE, 80),
    (Outcome.NOT_FOUND, 20),
    (Outcome.TOKEN_REJECTED, 20),
    (Outcome.INVALID_ID, 10),
    (Outcome.TIMEOUT, 10),
    (Outcome.SERVER_ERROR, 5),
    (Outcome.RATE_LIMITED, 5),
]
STATUS = {
    Outcome.FOUND: 200,
    Outcome.NOT_VISIBLE: 200,
    Outcome.NOT_FOUND: 200,
    Outcome.TOKEN_REJECTED: 401,
    Outcome.SERVER_ERROR: 500,
    Outcome.RATE_LIMITED: 429,
}
DEPLOYMENTS = [("prod", 70), ("staging", 20), ("dev", 10)]
ID_ALPHABET = string.ascii_lowercase + string.digits
COLUMNS = ("at", "actor_id", *CHAINED_FIELDS[1:], "mac")
# The text fields an appended entry may leave out.
BLANK = (
    "actor_username",
    "action",
    "via",
    "deployment",
    "meeting_id",
    "outcome",
    "connvo_request_id",
    "user_agent",
    "detail",
    "request_id",
)


class CannotSeed(ValueError):
    """An amount `seed` cannot make entries of; nothing was written."""


def _picker(rng: random.Random, pairs) -> Callable[[], object]:
    values = [getattr(value, "value", value) for value, _ in pairs]  # plain strings
    cumulative = []
    total = 0
    for _, weight in pairs:
        total += weight
        cumulative.append(total)
    return lambda: rng.choices(values, cum_weights=cumulative)[0]


def _entries(
    *, rows: int, days: float, staff: int, meetings: int, rng: random.Random
) -> Iterator[dict]:
    action = _picker(rng, ACTIONS)
    via = _picker(rng, VIAS)
    outcome = _picker(rng, OUTCOMES)
    deployment = _picker(rng, DEPLOYMENTS)
    meeting_ids = ["".join(rng.choices(ID_ALPHABET, k=32)) for _ in range(meetings)]
    names = [f"{SEED_PREFIX}{n:04d}" for n in range(1, staff + 1)]
    addresses = [f"10.{n // 250 % 250}.{n % 250}.{rng.randrange(2, 250)}" for n in range(staff)]
    current: dict[int, tuple[str, str]] = {}  # what each agent has open, for their refreshes
    start = timezone.now() - timedelta(days=days)
    step = timedelta(days=days) / max(rows, 1)
    for n in range(rows):
        # A few busy agents do most of the work; a few meetings get most of the attention.
        who = int(staff * rng.random() ** 2)
        entry = {
            "at": start + step * n,
            "actor_id": None,
            "actor_username": names[who],
            "action": action(),
            "via": "",
            "deployment": "",
            "meeting_id": "",
            "outcome": "",
            "http_status": None,
            "latency_ms": None,
            "connvo_request_id": "",
            "client_ip": addresses[who],
            "user_agent": USER_AGENTS[who % len(USER_AGENTS)],
            "detail": "",
            "request_id": "",
        }
        if entry["action"] == Action.LOOKUP:
            entry["via"] = via()
            if entry["via"] == Via.REFRESH and who in current:
                entry["deployment"], entry["meeting_id"] = current[who]
            else:
                place = (deployment(), meeting_ids[int(meetings * rng.random() ** 2)])
                entry["deployment"], entry["meeting_id"] = place
                if entry["via"] != Via.CLI:
                    current[who] = place
            ended = outcome() if entry["via"] != Via.REFRESH else Outcome.FOUND.value
            entry["outcome"] = ended
            entry["http_status"] = STATUS.get(ended)
            if ended not in (Outcome.INVALID_ID, Outcome.TIMEOUT):
                entry["latency_ms"] = int(rng.lognormvariate(4.6, 0.5))
            if ended != Outcome.FOUND:
                entry["connvo_request_id"] = f"{rng.getrandbits(64):016x}"
                entry["detail"] = f"Seeded {ended}."
            if entry["via"] == Via.CLI:
                entry["client_ip"], entry["user_agent"] = None, "manage.py"
        elif entry["action"] in (Action.TOKEN_SAVED, Action.TOKEN_REPLACED, Action.TOKEN_REMOVED):
            entry["deployment"] = deployment()
        elif entry["action"] == Action.SIGN_IN_FAILED:
            entry["actor_username"] = rng.choice([names[who], "admin", "root", names[who].upper()])
            entry["detail"] = "Wrong username or password."
        elif entry["action"] == Action.PERMISSION_DENIED:
            entry["http_status"] = 403
            entry["detail"] = "GET /audit/"
        yield entry


def _insert(batch: list[dict]) -> None:
    if connection.vendor == "postgresql":
        # COPY: an order of magnitude faster than INSERT for millions of rows.
        columns = ", ".join(COLUMNS)
        with connection.cursor() as cursor:
            sql = f"COPY {AuditEntry._meta.db_table} ({columns}) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for entry in batch:
                    copy.write_row([entry[name] for name in COLUMNS])
    else:
        objects = [AuditEntry(**{name: entry[name] for name in COLUMNS}) for entry in batch]
        AuditEntry.objects.bulk_create(objects, batch_size=500)


def append(
    entries: Iterable[dict],
    *,
    batch_size: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Chain and insert entries given as dicts of the chained fields (plus `actor_id`), in the
    order given, one locked transaction per batch. For made-up data only: real entries go
    through `audit.services.record`."""
    entries = iter(entries)
    written = 0
    while True:
        with transaction.atomic():
            head = lock_head()
            prev_mac, key = head.last_mac, head_key(head)
            batch = []
            for entry in entries:
                entry = {
                    "actor_id": None,
                    **dict.fromkeys(BLANK, ""),
                    "http_status": None,
                    "latency_ms": None,
                    "client_ip": None,
                    **entry,
                }
                entry["mac"] = prev_mac = compute_mac(entry, prev_mac=prev_mac, key=key)
                batch.append(entry)
                if len(batch) == batch_size:
                    break
            if not batch:
                return written
            _insert(batch)
            head.last_entry_id = (
                AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()
            )
            head.last_mac = prev_mac
            head.save(update_fields=["last_entry_id", "last_mac"])
        written += len(batch)
        if progress:
            progress(written)


def seed(
    *,
    rows: int,
    days: float = 90,
    staff: int = 200,
    meetings: int = 100_000,
    batch_size: int = 50_000,
    random_seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append `rows` realistic entries to the chain, dated across the `days` before now, by
    `staff` made-up staff names looking up `meetings` made-up meetings."""
    for name, amount, most in (
        ("rows", rows, None),
        ("staff", staff, MOST_STAFF),
        ("meetings", meetings, MOST_MEETINGS),
        ("batch_size", batch_size, None),
    ):
        if amount < 1 or (most is not None and amount > most):
            upto = f" to {most:,}" if most is not None else " up"
            raise CannotSeed(f"{name} must be from 1{upto}, not {amount}.")
    if not 0 < days <= MOST_DAYS:  # also refuses NaN; days may be a fraction
        raise CannotSeed(f"days must be above 0 and at most {MOST_DAYS:,}, not {days}.")
    rng = random.Random(random_seed)  # noqa: S311 (made-up data, not secrets)
    # The months the entries fall in get their partitions first (PostgreSQL), so that they are
    # not all written to the DEFAULT partition and moved later.
    partitions.ensure_partitions(since=timezone.now() - timedelta(days=days))
    entries = _entries(rows=rows, days=days, staff=staff, meetings=meetings, rng=rng)
    return append(entries, batch_size=batch_size, progress=progress)
