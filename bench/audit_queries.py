"""Time the audit pages' queries, their overview and "worth a look" flags at scale, next to Django
admin's changelist of the same table (ours, and a stock ModelAdmin).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/audit_bench \\
        .venv/bin/python bench/audit_queries.py --rows 10000000

Migrates the database it is pointed at, tops it up to --rows seeded entries with `audit_seed`'s
generator (an existing table is reused, after VACUUM ANALYZE), counts what is new into the
overview's summaries (`audit_rollup`), then prints p50/p95 per filter: the page's query through
the ORM (what the index design decides) and the whole page through Django's test client
(rendering included), then the overview and the flags alone. Filters use the busiest staff member
and the most looked-up meeting. Prints figures only; nothing here asserts a time.
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
from unittest import mock
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.admin import AdminSite, ModelAdmin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Max, Min, Sum  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit import insights, overview, rollup, seeding, selectors  # noqa: E402
from audit.forms import AuditFilterForm  # noqa: E402
from audit.models import (  # noqa: E402
    ActivityDay,
    ActivityHour,
    AuditEntry,
    StaffDay,
    StaffHour,
)


class StockAuditAdmin(ModelAdmin):
    """What `admin.site.register(AuditEntry)` with the obvious options gives: full counts,
    filters that scan for their values, substring search."""

    list_display = ["at", "actor_username", "action", "via", "deployment", "meeting_id", "outcome"]
    list_filter = ["action", "via", "outcome", "deployment"]
    search_fields = ["actor_username", "meeting_id"]


stock_site = AdminSite(name="stock_admin")
stock_site.register(AuditEntry, StockAuditAdmin)
# This module is the URLconf while it runs: the console's URLs plus the stock admin.
urlpatterns = [path("stock-admin/", stock_site.urls), path("", include("connvo_admin.urls"))]


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
        vacuum()
        return
    missing = rows - have
    print(f"seeding {missing:,} entries (have {have:,})…")
    started = time.monotonic()

    def progress(written: int) -> None:
        if written % 500_000 < 50_000:
            print(f"  {written:,} ({written / (time.monotonic() - started):,.0f}/s)", flush=True)

    seeding.seed(rows=missing, days=365, staff=300, meetings=200_000, progress=progress)
    print(f"seeded in {time.monotonic() - started:,.0f} s")
    vacuum()


def vacuum() -> None:
    """Fresh statistics and visibility map: a reused table may have been filled by a run that
    stopped before its own VACUUM, and index-only scans need the map."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in (
            "audit_auditentry",
            "audit_activityhour",
            "audit_activityday",
            "audit_staffday",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def count_new_entries() -> None:
    started, total = time.monotonic(), 0
    while counted := rollup.catch_up(limit=200_000):
        total += counted
    elapsed = time.monotonic() - started
    print(f"counted {total:,} new entries into the summaries in {elapsed:,.0f} s")
    if total:
        vacuum()
    sizes = {
        model.__name__: model.objects.count()
        for model in (ActivityHour, ActivityDay, StaffDay, StaffHour)
    }
    print("summary rows: " + ", ".join(f"{name} {n:,}" for name, n in sizes.items()))


def load() -> str:
    return "load average " + " ".join(f"{n:.2f}" for n in os.getloadavg())


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
    parser.add_argument(
        "--overview-only", action="store_true", help="time the overview and the flags only"
    )
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    print(f"start: {load()}")
    top_up(args.rows)
    total = entry_count()

    count_new_entries()

    # The busiest staff member and meeting: the filters whose pages and summaries cost the most.
    busy = (
        StaffDay.objects.values("actor_username")
        .annotate(n=Sum("lookups"))
        .order_by("-n")
        .values_list("actor_username", flat=True)[:1]
        .get()
    )
    quiet = (
        AuditEntry.objects.filter(actor_username__startswith=seeding.SEED_PREFIX)
        .order_by("-actor_username")
        .values_list("actor_username", flat=True)[:1]
        .get()
    )
    started = time.monotonic()
    meeting = (
        AuditEntry.objects.filter(action="lookup")
        .exclude(meeting_id="")
        .values("meeting_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("meeting_id", flat=True)[:1]
        .get()
    )
    print(f"found the busiest meeting in {time.monotonic() - started:,.0f} s")
    # Halfway through the log's time span (audit_seed's defaults fill 90 days, the bench 365).
    span = AuditEntry.objects.aggregate(first=Min("at"), last=Max("at"))
    middle = span["first"] + (span["last"] - span["first"]) / 2
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
        "page halfway back (keyset)": {"before": deep_cursor},
        "staff busy, halfway back": {"staff": busy, "before": deep_cursor},
        "staff + deployment, no match": {"staff": busy, "deployment": "nowhere"},
        "via=refresh + outcome=not_visible": {"via": "refresh", "outcome": "not_visible"},
        "staff busy + deployment=prod + via=page": {
            "staff": busy,
            "deployment": "prod",
            "via": "page",
        },
    }

    User = get_user_model()
    admin, _ = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)

    def page(url: str, params: dict | None = None) -> Callable[[], object]:
        def get() -> None:
            response = client.get(url, params or {}, secure=True)  # production mode is HTTPS-only
            assert response.status_code == 200, (url, params, response.status_code)

        return get

    if not args.overview_only:
        print(
            f"\n{connection.vendor}, {total:,} entries, page size {settings.AUDIT_PAGE_SIZE}, "
            f"{args.reps} runs each (ms)"
        )
        print(
            f"{'filter':<40} {'query p50':>10} {'query p95':>10} {'page p50':>10} {'page p95':>10}"
        )
        for name, params in filters.items():
            q50, q95 = timings(page_query(params), args.reps)
            p50, p95 = timings(page("/audit/", params), args.reps)
            print(f"{name:<40} {q50:>10.1f} {q95:>10.1f} {p50:>10.1f} {p95:>10.1f}", flush=True)

        extra = {
            "meeting history page (busiest meeting)": page(f"/audit/meetings/{meeting}/"),
            "staff activity page (busiest staff)": page(f"/audit/staff/{busy}/"),
            "entry page (previous / next)": page(f"/audit/entries/{mid_entry.pk}/"),
        }
        for name, get in extra.items():
            p50, p95 = timings(get, args.reps)
            print(f"{name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}", flush=True)

    print(f"\nOverview and flags alone ({args.reps} runs each, ms)")
    print(f"{'what':<40} {'':>10} {'':>10} {'p50':>10} {'p95':>10}")
    now = timezone.now()
    zone = timezone.get_current_timezone()
    year_ago = (now - timedelta(days=365)).date().isoformat()
    overviews = {
        "overview: last 7 days": {},
        "overview: one day": {"since": day, "until": day},
        "overview: last 30 days": {"since": (now - timedelta(days=30)).date().isoformat()},
        "overview: a whole year": {"since": year_ago},
        "overview: a whole year + refreshes": {"since": year_ago, "refreshes": "on"},
        "overview: a whole year, via=cli": {"since": year_ago, "via": "cli"},
        "overview: outcome=not_visible": {"outcome": "not_visible"},
        "overview: deployment=dev + via=cli": {"deployment": "dev", "via": "cli"},
        "overview: busiest staff": {"staff": busy},
        "overview: busiest meeting": {"meeting": meeting},
    }
    for name, params in overviews.items():
        form = AuditFilterForm(params)
        assert form.is_valid(), form.errors
        entry_filter = form.entry_filter()
        p50, p95 = timings(
            lambda f=entry_filter: overview.overview(f, now=now, zone=zone), args.reps
        )
        print(f"{name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}", flush=True)
    # A day chart in a zone far from UTC: every local day straddles two UTC days.
    far_east = ZoneInfo("Pacific/Kiritimati")
    form = AuditFilterForm({"since": year_ago})
    assert form.is_valid(), form.errors
    year = form.entry_filter()
    p50, p95 = timings(lambda: overview.overview(year, now=now, zone=far_east), args.reps)
    name = "overview: a whole year, UTC+14"
    print(f"{name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}", flush=True)
    for name, window in {
        "flags: last 24 hours": 1,
        "flags: last 7 days": 7,
        "flags: last 30 days": 30,
    }.items():
        since = now - timedelta(days=window)
        p50, p95 = timings(lambda s=since: insights.find_flags(now=now, since=s), args.reps)
        print(f"{name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}", flush=True)
        # Side by side: the same flags with every hour read from the window's entries, as they
        # were before the per-hour summary.
        with mock.patch.object(insights, "_recent", insights.recent_from_entries):
            p50, p95 = timings(lambda s=since: insights.find_flags(now=now, since=s), args.reps)
        name = f"{name}, entries only"
        print(f"{name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}", flush=True)
    p50, p95 = timings(page("/audit/"), args.reps)
    print(f"{'/audit/ with overview and flags':<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}")

    if not args.overview_only:
        print(f"\nDjango admin changelist of the same table ({args.admin_reps} runs each, ms)")
        print(f"{'page':<40} {'':>10} {'':>10} {'page p50':>10} {'page p95':>10}")
        admin_pages = {
            "default changelist": {},
            "action=sign_in_failed": {"action__exact": "sign_in_failed"},
            "search staff": {"q": quiet},
        }
        for prefix, url in (("admin", "/admin/"), ("stock admin", "/stock-admin/")):
            for name, params in admin_pages.items():
                get = page(f"{url}audit/auditentry/", params)
                p50, p95 = timings(get, args.admin_reps)
                print(f"{prefix + ': ' + name:<40} {'':>10} {'':>10} {p50:>10.1f} {p95:>10.1f}")
    print(f"\nend: {load()}")


if __name__ == "__main__":
    # Pages render without `collectstatic` having run.
    plain_static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(
        STORAGES={**settings.STORAGES, "staticfiles": plain_static}, ROOT_URLCONF="__main__"
    ):
        main()
