"""Time counting new audit entries into the summaries (`audit/rollup.py`), and the part of it
spent on the per-hour staff summary, whose different meetings are counted again from the entries
of each staff hour a batch touches.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/audit_bench \\
        .venv/bin/python bench/rollup_batches.py --batches 5 --size 20000

Appends --batches batches of --size lookups (a third of them live refreshes) at random instants
within the last hour, by --staff staff members of the run's own (their staff hours start empty)
over --meetings meetings (or, with --own-meetings N, each over N meetings of their own, as
support work looks), and counts each batch
as the audit page does (`catch_up(limit=size)`). Runs in production mode like the other audit
benches (SECRET_KEY, TOKEN_ENCRYPTION_KEYS, AUDIT_CHAIN_KEY). The entries stay in the database.
Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.utils import timezone  # noqa: E402

from audit import rollup, seeding  # noqa: E402


def entries(
    rng: random.Random, *, size: int, staff: int, meetings: int, own: int, names: str
) -> list[dict]:
    now = timezone.now()
    batch = []
    for _ in range(size):
        agent = rng.randrange(1, staff + 1)
        # Support work: each agent among a few meetings of their own; else any meeting at all.
        meeting = agent * own + rng.randrange(own) if own else rng.randrange(meetings)
        batch.append(
            {
                "at": now - timedelta(seconds=rng.randrange(3600)),
                "actor_username": f"{names}{agent:04d}",
                "action": "lookup",
                "via": rng.choice(["page", "page", "refresh"]),
                "deployment": "prod",
                "meeting_id": f"bench{meeting:027d}",
                "outcome": "found",
                "http_status": 200,
                "client_ip": "10.0.0.9",
                "user_agent": "bench",
            }
        )
    return sorted(batch, key=lambda entry: entry["at"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--staff", type=int, default=300)
    parser.add_argument("--meetings", type=int, default=2_000)
    parser.add_argument(
        "--own-meetings",
        type=int,
        default=0,
        help="each staff member looks up this many meetings of their own (0: any of --meetings)",
    )
    args = parser.parse_args()

    spent: list[float] = []
    count_staff_hours = rollup._add_staff_hours

    def timed(*positional, **named):
        started = time.perf_counter()
        try:
            return count_staff_hours(*positional, **named)
        finally:
            spent.append(time.perf_counter() - started)

    rollup._add_staff_hours = timed
    rollup.catch_up()  # what was there before is not part of the figures
    rng = random.Random(5)
    # Staff names of this run's own: its staff hours start empty, whatever ran before.
    names = f"bench-{int(time.time())}-"
    print("load average " + " ".join(f"{n:.2f}" for n in os.getloadavg()))
    totals, parts = [], []
    for number in range(args.batches):
        seeding.append(
            entries(
                rng,
                size=args.size,
                staff=args.staff,
                meetings=args.meetings,
                own=args.own_meetings,
                names=names,
            )
        )
        spent.clear()
        started = time.perf_counter()
        counted = rollup.catch_up(limit=args.size)
        totals.append(time.perf_counter() - started)
        parts.append(sum(spent))
        print(
            f"batch {number + 1}: {counted:,} entries counted in {totals[-1] * 1000:,.0f} ms, "
            f"of which staff hours {parts[-1] * 1000:,.0f} ms",
            flush=True,
        )
    print(
        f"median: {statistics.median(totals) * 1000:,.0f} ms a batch, staff hours "
        f"{statistics.median(parts) * 1000:,.0f} ms"
    )
    print("load average " + " ".join(f"{n:.2f}" for n in os.getloadavg()))


if __name__ == "__main__":
    main()
