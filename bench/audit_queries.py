"""Time the audit pages' queries at scale, next to Django admin's changelist of the same table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/audit_bench \\
        .venv/bin/python bench/audit_queries.py --rows 10000000

Migrates the database it is pointed at, tops it up to --rows seeded entries with `audit_seed`'s
generator (an existing table is reused), then prints p50/p95 per filter: the page's query through
the ORM (what the index design decides) and the whole page through Django's test client
(rendering included). Prints figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit import seeding, selectors  # noqa: E402
from audit.forms import AuditFilterForm  # noqa: E402
from audit.models import AuditEntry  # noqa: E402


def entry_count() -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE relname = %s", ["audit_auditentry"]
            )
            estimate = cursor.fetchone()[0]
        if estimate > 0:
            return estimate
    return AuditEntry.objects.count()


def top_up(rows: int) -> None:
    have = entry_count()
    if have >= rows * 0.99:
        print(f"reusing {have:,} entries")
        return
    missing = rows - have
    print(f"seeding {missing:,} entries (have {have:,})…")
    started = time.monotonic()

    def progress(written: int) -> None:
        if written % 500_000 < 50_000:
            print(f"  {written:,} ({written / (time.monotonic() - started):,.0f}/s)", flush=True)

    seeding.seed(rows=missing, days=365, staff=300, meetings=200_000, progress=progress)
    print(f"seeded in {time.monotonic() - started:,.0f} s")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditentry")


def sample(column: str, **where) -> str:
    """A value that occurs in the table, from its newest rows (a cheap, realistic pick)."""
    return (
        AuditEntry.objects.filter(**where)
        .exclude(**{column: ""})
        .order_by("-at", "-id")
        .values_list(column, flat=True)[500:501]
        .get()
    )


def timings(function: Callable[[], object], reps: int) -> tuple[float, float]:
    function()  # warm the cache, like a page someone keeps open
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def page_query(params: dict) -> Callable[[], object]:
    form = AuditFilterForm(params)
    assert form.is_valid(), form.errors
    entries = selectors.filtered_entries(form.entry_filter())
    before = selectors.Cursor.parse(params["before"]) if "before" in params else None
    return lambda: selectors.page_of(entries, size=settings.AUDIT_PAGE_SIZE, before=before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=40, help="timed runs per filter")
    parser.add_argument("--admin-reps", type=int, default=5, help="timed runs per admin page")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    top_up(args.rows)
    total = entry_count()

    busy = sample("actor_username", action="lookup")
    quiet = (
        AuditEntry.objects.filter(actor_username__startswith=seeding.SEED_PREFIX)
        .order_by("-actor_username")
        .values_list("actor_username", flat=True)[:1]
        .get()
    )
    meeting = sample("meeting_id", via="page")
    middle = timezone.now() - timedelta(days=180)
    day = middle.date().isoformat()
    mid_entry = AuditEntry.objects.filter(at__lte=middle).order_by("-at", "-id").first()
    deep_cursor = str(selectors.Cursor.of(mid_entry))

    filters = {
        "newest (refreshes hidden)": {},
        "with refreshes": {"refreshes": "on"},
        f"staff, busy ({busy})": {"staff": busy},
        f"staff, quiet ({quiet})": {"staff": quiet},
        "meeting": {"meeting": meeting},
        "meeting + refreshes": {"meeting": meeting, "refreshes": "on"},
        "deployment=prod": {"deployment": "prod"},
        "deployment=dev": {"deployment": "dev"},
        "outcome=not_visible": {"outcome": "not_visible"},
        "outcome=rate_limited (rare)": {"outcome": "rate_limited"},
        "via=cli": {"via": "cli"},
        "via=refresh": {"via": "refresh"},
        "action=sign_in_failed": {"action": "sign_in_failed"},
        "action=permission_denied": {"action": "permission_denied"},
        f"one day ({day})": {"since": day, "until": day},
        "staff busy + outcome=timeout": {"staff": busy, "outcome": "timeout"},
        "deployment=dev + one day": {"deployment": "dev", "since": day, "until": day},
        "page ~180 days back (keyset)": {"before": deep_cursor},
        "staff busy, ~180 days back": {"staff": busy, "before": deep_cursor},
        "staff + deployment, no match": {"staff": busy, "deployment": "nowhere"},
    }

    User = get_user_model()
    admin, _ = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)

    def page(url: str, params: dict | None = None) -> Callable[[], object]:
        def get() -> None:
            response = client.get(url, params or {})
            assert response.status_code == 200, (url, params, response.status_code)

        return get

    print(
        f"\n{connection.vendor}, {total:,} entries, page size {settings.AUDIT_PAGE_SIZE}, "
        f"{args.reps} runs each (ms)"
    )
    print(f"{'filter':<40} {'query p50':>10} {'query p95':>10} {'page p50':>10} {'page p95':>10}")
    for name, params in filters.items():
        q50, q95 = timings(page_query(params), args.reps)
        p50, p95 = timings(page("/audit/", params), args.reps)
        print(f"{name:<40} {q50:>10.1f} {q95:>10.1f} {p50:>10.1f} {p95:>10.1f}", flush=True)

    extra = {
        "meeting history page (who looked)": page(f"/audit/meetings/{meeting}/"),
        "staff activity page (busy)": page(f"/audit/staff/{busy}/"),
    }
    for name, get in extra.items():
        p50, p95 = timings(get, args.reps)
        print(f"{name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}", flush=True)

    print(f"\nDjango admin changelist of the same table ({args.admin_reps} runs each, ms)")
    print(f"{'page':<40} {'':>10} {'':>10} {'page p50':>10} {'page p95':>10}")
    admin_pages = {
        "admin: default changelist": {},
        "admin: action=sign_in_failed": {"action__exact": "sign_in_failed"},
        "admin: search staff": {"q": quiet},
    }
    for name, params in admin_pages.items():
        p50, p95 = timings(page("/admin/audit/auditentry/", params), args.admin_reps)
        print(f"{name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}", flush=True)


if __name__ == "__main__":
    # Pages render without `collectstatic` having run.
    plain_static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain_static}):
        main()
