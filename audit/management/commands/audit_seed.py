"""Fill the audit log with realistic, correctly chained entries, to try the pages at scale."""

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import seeding
from audit.management.arguments import IN_SQL, count
from audit.management.arguments import batch_size as batch_size_type


class Command(BaseCommand):
    help = (
        "Append N realistic audit entries (lookups, refreshes, sign-ins, refusals…) spread over "
        "the last DAYS days. They are real links of the hash chain, so audit_verify passes; "
        f"their staff names start with {seeding.SEED_PREFIX!r}. Never run it on production data."
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

    def handle(self, *args, rows: int, **options) -> None:
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
