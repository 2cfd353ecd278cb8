"""Walk the audit log's hash chain, check it still holds every witnessed checkpoint, record the
result for the audit pages, and emit a new checkpoint."""

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import chain

EXIT_BROKEN = 1


class Command(BaseCommand):
    help = (
        "Check every audit entry against its MAC and the entry before it, across purges and key "
        "rotations. With --checkpoint, also check that the chain still contains every checkpoint "
        "in FILE (or in lines read from stdin with '-', e.g. the console's JSON log). Prints the "
        "first broken link and exits 1 if there is one; otherwise emits a new checkpoint. The "
        "result is shown on the audit pages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="entries read per query (default 5000)"
        )
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="witnessed checkpoints: AUDIT_CHECKPOINT_FILE, or '-' for log lines on stdin",
        )

    def _checkpoints(self, source: str | None) -> list[chain.Checkpoint]:
        if source is None:
            return []
        try:
            if source == "-":
                # The bytes, not the text Python decoded: in the C locale it turns bytes that are
                # not UTF-8 into surrogates instead of refusing them.
                lines = getattr(sys.stdin, "buffer", sys.stdin)
                return chain.read_checkpoints(lines, source="standard input")
            with Path(source).open("rb") as lines:
                return chain.read_checkpoints(lines, source=source)
        except OSError as error:
            raise CommandError(f"Cannot read the checkpoints: {error}") from None
        except chain.BadCheckpoint as error:
            self.stderr.write(f"Audit chain NOT VERIFIED: {error}")
            raise SystemExit(EXIT_BROKEN) from None

    def handle(self, *args, batch_size: int, checkpoint: str | None, **options) -> None:
        checkpoints = self._checkpoints(checkpoint)
        if checkpoint is not None and not checkpoints:
            raise CommandError(f"No checkpoint found in {checkpoint}.")
        started = time.monotonic()
        result = chain.verify(batch_size=batch_size, checkpoints=checkpoints)
        chain.record_verification(result, duration_ms=chain.elapsed_ms(started))
        if not result.ok:
            self.stderr.write(
                f"Audit chain BROKEN after {result.entries_checked:,} good entries: "
                f"{result.message}"
            )
            raise SystemExit(EXIT_BROKEN)
        self.stdout.write(self.style.SUCCESS(f"Audit chain OK: {result.message}"))
        try:
            chain.emit_checkpoint(
                last_id=result.last_id, last_mac=result.last_mac, entries=result.entries_checked
            )
        except OSError as error:
            raise CommandError(f"Could not append to AUDIT_CHECKPOINT_FILE: {error}") from None
