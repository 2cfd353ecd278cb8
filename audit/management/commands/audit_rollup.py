"""Count new audit entries into the hourly summary behind the overview and the flags."""

import time

from django.core.management.base import BaseCommand, CommandParser

from audit import rollup
from audit.management.arguments import batch_size as batch_size_type


class Command(BaseCommand):
    help = (
        "Count the audit entries written since the last run into the hourly activity summary "
        "(what the audit overview and audit_insights read). Run it from cron every few minutes; "
        "the audit page also counts a small batch itself when opened."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=batch_size_type, default=200_000, metavar="N")

    def handle(self, *args, batch_size: int, **options) -> None:
        started, total = time.monotonic(), 0
        while counted := rollup.catch_up(limit=max(batch_size, 1)):
            total += counted
            if options["verbosity"] > 1:
                self.stdout.write(f"  {total:,} entries counted")
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Counted {total:,} new entries in {elapsed:.1f} s; the summary now covers every "
            f"entry up to #{rollup.counted_through()}."
        )
