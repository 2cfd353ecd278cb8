"""Walk the audit log's hash chain, check it still holds every witnessed checkpoint, record the
result for the audit pages, and emit a new checkpoint."""

import sys
import time
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import chain
from audit.management.arguments import batch_size as batch_size_type

EXIT_BROKEN = 1


class Command(BaseCommand):
    help = (
        "Check every audit entry against its MAC and the entry before it, across purges and key "
        "rotations. With --checkpoint, also check that the chain still contains every checkpoint "
        "in FILE (or in lines read from stdin with '-', e.g. the console's JSON log). With "
        "--since-checkpoint, walk only from the newest witnessed checkpoint to the head. Prints "
        "the first broken link and exits 1 if there is one; otherwise emits a new checkpoint. The "
        "result is shown on the audit pages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=batch_size_type,
            default=5000,
            help="entries read per query (default 5000)",
        )
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="witnessed checkpoints: AUDIT_CHECKPOINT_FILE, or '-' for log lines on stdin",
        )
        parser.add_argument(
            "--since-checkpoint",
            action="store_true",
            help=(
                "walk only from the newest witnessed checkpoint an earlier walk verified (from "
                "--checkpoint FILE, else AUDIT_CHECKPOINT_FILE, else the console's own copy of "
                "its checkpoints) to the newest entry: the daily check"
            ),
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

    def _starts(self, source: str | None) -> tuple[list[chain.Checkpoint], str]:
        """Where a walk may start, and a note when it is not a witness outside the database."""
        source = source or settings.AUDIT_CHECKPOINT_FILE or None
        if source is not None:
            return self._checkpoints(source), ""
        # Not a witness: whoever can change the entries can change these rows too. A walk from
        # one still checks every entry after it, and each was verified by an earlier walk.
        stored = chain.stored_checkpoints()
        note = (
            " (The checkpoint came from the console's own copy in the database, not a witness "
            "outside it: pass --checkpoint FILE or set AUDIT_CHECKPOINT_FILE.)"
        )
        return stored, note

    def handle(
        self, *args, batch_size: int, checkpoint: str | None, since_checkpoint: bool, **options
    ) -> None:
        started = time.monotonic()
        if since_checkpoint:
            starts, note = self._starts(checkpoint)
            result = chain.verify_since_checkpoint(checkpoints=starts, batch_size=batch_size)
            if note and result.from_id is not None:
                result = replace(result, message=result.message + note)
        else:
            checkpoints = self._checkpoints(checkpoint)
            if checkpoint is not None and not checkpoints:
                raise CommandError(f"No checkpoint found in {checkpoint}.")
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
            entries = result.entries
            if entries is None:  # a purge since the checkpoint the walk started from
                entries = chain.entries_through(result.last_id)
            chain.emit_checkpoint(last_id=result.last_id, last_mac=result.last_mac, entries=entries)
        except OSError as error:
            raise CommandError(f"Could not append to AUDIT_CHECKPOINT_FILE: {error}") from None
