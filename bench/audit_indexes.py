"""Which of the audit log's indexes the pages' queries use, and what each query costs without the
indexes proposed for dropping (#22, docs/performance.md "Indexes kept and dropped").

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/audit_bench \\
        .venv/bin/python bench/audit_indexes.py [--without audit_by_via,audit_by_deployment ...]

Runs each query of the audit pages, filters, meeting and staff pages, overview, flags, exports and
admin search under EXPLAIN (ANALYZE, BUFFERS) on the seeded log it is pointed at (`audit_seed`),
and prints the indexes the plan reads, the execution time and the buffers touched. With
--without, the named indexes are dropped inside a transaction that is rolled back afterwards, so
the same data answers with and without them. Prints figures only."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit import insights  # noqa: E402
from audit.models import Action, AuditEntry, Via  # noqa: E402
from audit.selectors import EntryFilter, filtered_entries  # noqa: E402

PAGE = 51  # a page of 50 and one more, as page_of reads


def page(**fields) -> Callable:
    return lambda: filtered_entries(EntryFilter(**fields))[:PAGE]


def queries() -> dict[str, Callable]:
    now = timezone.now()
    busy_meeting = (
        AuditEntry.objects.filter(action=Action.LOOKUP)
        .values("meeting_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("meeting_id", flat=True)[:1]
        .get()
    )
    some_entry = AuditEntry.objects.order_by("-id")[5000:5001].get()
    some_request = (
        AuditEntry.objects.exclude(connvo_request_id="")
        .values_list("connvo_request_id", flat=True)
        .order_by("-id")
        .first()
    )
    return {
        "log, no filter": page(),
        "log, with refreshes": page(include_refreshes=True),
        "log, one day": page(since=now - timedelta(days=3), until=now - timedelta(days=2)),
        "log, older page (keyset)": lambda: (
            filtered_entries(EntryFilter())
            .filter(at__lte=some_entry.at)
            .exclude(at=some_entry.at, id__gte=some_entry.pk)[:PAGE]
        ),
        "staff page, busiest": page(staff="seed-agent-0001"),
        "staff page, quietest": page(staff="seed-agent-0200"),
        "staff + deployment dev": page(staff="seed-agent-0050", deployment="dev"),
        "staff first entry": lambda: (
            AuditEntry.objects.filter(actor_username="seed-agent-0050")
            .order_by("at", "id")
            .values_list("at")[:1]
        ),
        "meeting page entries": page(meeting_id=busy_meeting, include_refreshes=True),
        "meeting who looked": lambda: (
            AuditEntry.objects.filter(meeting_id=busy_meeting, action=Action.LOOKUP)
            .values("actor_username", "deployment")
            .annotate(n=Count("id"))
        ),
        "deployment prod": page(deployment="prod"),
        "deployment dev": page(deployment="dev"),
        "deployment unknown (none)": page(deployment="nowhere"),
        "outcome not_visible": page(outcome="not_visible"),
        "outcome server_error": page(outcome="server_error"),
        "outcome + via (refresh, not_visible)": page(outcome="not_visible", via=Via.REFRESH),
        "via cli": page(via=Via.CLI),
        "via table (none)": page(via=Via.TABLE),
        "action sign_in_failed": page(action=Action.SIGN_IN_FAILED),
        "action token_removed": page(action=Action.TOKEN_REMOVED),
        "action audit_purged (none)": page(action=Action.AUDIT_PURGED),
        "recent lookups of a user": lambda: AuditEntry.objects.filter(
            actor_id=1, action=Action.LOOKUP, via=Via.PAGE
        ).order_by("-at", "-id")[:10],
        "admin search by Connvo request": lambda: AuditEntry.objects.filter(
            connvo_request_id=some_request
        ),
        "flags: page lookups, last hour": lambda: insights._page_lookups(
            now - timedelta(hours=1), now
        ),
        "entry page neighbours": lambda: (
            AuditEntry.objects.exclude(action=Action.AUDIT_VIEWED)
            .filter(at__lte=some_entry.at)
            .exclude(at=some_entry.at, id__gte=some_entry.pk)
            .order_by("-at", "-id")[:1]
        ),
        "overview oldest entry": lambda: AuditEntry.objects.order_by("at").values_list("at")[:1],
        "export of a staff member": lambda: filtered_entries(EntryFilter(staff="seed-agent-0050")),
    }


def indexes_in(plan: dict) -> set[str]:
    found = set()
    if "Index Name" in plan:
        # On a partitioned table each partition has its own copy, named after the partition.
        found.add(plan["Index Name"])
    for child in plan.get("Plans", []):
        found |= indexes_in(child)
    return found


def family(name: str) -> str:
    """A partition's index, by the name of the table's index it is a copy of."""
    return PARENTS.get(name, name)


PARENTS: dict[str, str] = {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--without", default="", help="indexes to drop for the run")
    args = parser.parse_args()
    drop = [name for name in args.without.split(",") if name]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'I'"
        )
        PARENTS.update(cursor.fetchall())
        cursor.execute("SELECT count(*) FROM audit_auditentry")
        (count,) = cursor.fetchone()
    print(f"{count:,} entries; without: {', '.join(drop) or 'nothing'}")
    print(f"{'query':40} {'ms':>9} {'buffers':>9}  indexes")
    with transaction.atomic():
        with connection.cursor() as cursor:
            for name in drop:
                cursor.execute(f"DROP INDEX {name}")
        for label, build in queries().items():
            query = build()
            raw = query.explain(format="json", analyze=True, buffers=True)
            (result,) = json.loads(raw)
            plan = result["Plan"]
            buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
            used = sorted({family(n) for n in indexes_in(plan)}) or ["(sequential scan)"]
            ms = result["Execution Time"]
            print(f"{label:40} {ms:9.2f} {buffers:9,}  {', '.join(used)}")
        transaction.set_rollback(True)


if __name__ == "__main__":
    main()
