"""Fill the audit log with realistic, correctly chained entries, to try the pages at scale."""

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import seeding


class Command(BaseCommand):
    help = (
        "Append N realistic audit entries (lookups, refreshes, sign-ins, refusals…) spread over "
        "the last DAYS days. They are real links of the hash chain, so audit_verify passes; "
        f"their staff names start with {seeding.SEED_PREFIX!r}. Never run it on production data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, required=True, metavar="N")
        parser.add_argument("--days", type=float, default=90)
        parser.add_argument("--staff", type=int, default=200, help="distinct staff names")
        parser.add_argument("--meetings", type=int, default=100_000, help="distinct meetings")
        parser.add_argument("--batch-size", type=int, default=50_000)
        parser.add_argument("--random-seed", type=int, default=None, help="for repeatable data")

    def handle(self, *args, rows: int, **options) -> None:
        if rows < 1:
            raise CommandError("--rows must be at least 1.")
        started = time.monotonic()

        def progress(written: int) -> None:
            rate = written / max(time.monotonic() - started, 1e-9)
            self.stdout.write(f"  {written:,} / {rows:,} entries ({rate:,.0f}/s)")

        seeding.seed(
            rows=rows,
            days=options["days"],
            staff=options["staff"],
            meetings=options["meetings"],
            batch_size=options["batch_size"],
            random_seed=options["random_seed"],
            progress=progress if options["verbosity"] > 0 else None,
        )
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"Seeded {rows:,} audit entries in {elapsed:.1f} s."))
