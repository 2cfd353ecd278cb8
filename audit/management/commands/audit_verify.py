"""Walk the audit log's hash chain and record the result for the audit pages."""

import time

from django.core.management.base import BaseCommand, CommandParser

from audit import chain

EXIT_BROKEN = 1


class Command(BaseCommand):
    help = (
        "Check every audit entry against its MAC and the entry before it. Prints the first broken "
        "link (an edited, deleted or inserted entry) and exits 1 if there is one. The result is "
        "shown on the audit pages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="entries read per query (default 5000)"
        )

    def handle(self, *args, batch_size: int, **options) -> None:
        started = time.monotonic()
        result = chain.verify(batch_size=batch_size)
        chain.record_verification(result, duration_ms=chain.elapsed_ms(started))
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"Audit chain OK: {result.message}"))
            return
        self.stderr.write(
            f"Audit chain BROKEN after {result.entries_checked:,} good entries: {result.message}"
        )
        raise SystemExit(EXIT_BROKEN)
