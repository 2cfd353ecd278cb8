"""Fill the audit log with realistic, correctly chained entries, to try the pages at scale."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import seeding
from audit.management.arguments import IN_SQL, count
from audit.management.arguments import batch_size as batch_size_type

BENCH_DATABASE = "--bench-database"


class Command(BaseCommand):
    help = (
        "Append N realistic audit entries (lookups, refreshes, sign-ins, refusals…) spread over "
        "the last DAYS days. They are real links of the hash chain, so audit_verify passes; "
        f"their staff names start with {seeding.SEED_PREFIX!r}. The audit log is append-only: "
        "made-up entries can never be taken out of it again. So it runs with DEBUG on only, or "
        f"in production mode (DEBUG off) with {BENCH_DATABASE}, on a database of a bench's own."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rows", type=count("entry", "entries", most=IN_SQL), required=True, metavar="N"
        )
        parser.add_argument(
            "--days",
            type=count("day", "days", most=seeding.MOST_DAYS),
            default=90,
            help="how far back the entries go (default 90)",
        )
        parser.add_argument(
            "--staff",
            type=count("staff name", "staff names", most=seeding.MOST_STAFF),
            default=200,
            help="distinct staff names (default 200)",
        )
        parser.add_argument(
            "--meetings",
            type=count("meeting", "meetings", most=seeding.MOST_MEETINGS),
            default=100_000,
            help="distinct meetings (default 100000)",
        )
        parser.add_argument("--batch-size", type=batch_size_type, default=50_000)
        parser.add_argument("--random-seed", type=int, default=None, help="for repeatable data")
        parser.add_argument(
            BENCH_DATABASE,
            action="store_true",
            help=(
                "seed in production mode (DEBUG off): this database is a bench's own, never one "
                "the console serves"
            ),
        )

    def handle(self, *args, rows: int, bench_database: bool, **options) -> None:
        if not settings.DEBUG and not bench_database:
            raise CommandError(
                "Nothing seeded: this is production mode (DEBUG off), and made-up entries can "
                "never be taken out of the append-only audit log again (audit_verify would pass "
                f"over them). Seed with DEBUG=true, or pass {BENCH_DATABASE} when this database "
                "is a bench's own, never one the console serves."
            )
        started = time.monotonic()

        def progress(written: int) -> None:
            rate = written / max(time.monotonic() - started, 1e-9)
            self.stdout.write(f"  {written:,} / {rows:,} entries ({rate:,.0f}/s)")

        try:
            seeding.seed(
                rows=rows,
                days=options["days"],
                staff=options["staff"],
                meetings=options["meetings"],
                batch_size=options["batch_size"],
                random_seed=options["random_seed"],
                progress=progress if options["verbosity"] > 0 else None,
            )
        except seeding.CannotSeed as error:  # call_command(rows=0, …): argparse never saw them
            raise CommandError(f"Nothing seeded: {error}") from None
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"Seeded {rows:,} audit entries in {elapsed:.1f} s."))
