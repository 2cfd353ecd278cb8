"""Seal what is counted outside the chain into it: spans of pages gone quiet (finally), open spans
due a periodic seal, and past minutes' counted refusals. Run every minute from a timer
(docs/deploy.md); the audit pages run the same before they read."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from audit import partitions, repeats, spans


class Command(BaseCommand):
    help = (
        "Seal into the audit chain: the spans of pages that went quiet (calls counted but never "
        "answered are sealed as unanswered), open spans last sealed more than "
        "AUDIT_SPAN_SEAL_EVERY seconds ago, and finished minutes' counted refusals; creates the "
        "coming months' partitions (PostgreSQL). Prints what it did."
    )

    def handle(self, *args, **options) -> None:
        try:
            quiet, due = spans.seal_what_is_due()
            refusals = repeats.seal_past()
            # Next months' partitions well before they are needed (PostgreSQL; cheap when they
            # exist, a no-op on SQLite): the timer runs on one host every minute.
            created = partitions.ensure_partitions()
        except DatabaseError as error:
            raise CommandError(f"Could not seal: {error}") from None
        for label, entries in (("closed", quiet), ("open", due)):
            if entries:
                calls = sum(entry.calls for entry in entries)
                unanswered = sum(entry.tally["unanswered"] for entry in entries)
                self.stdout.write(
                    f"Sealed {len(entries)} part(s) of {label} spans: {calls} Connvo calls, "
                    f"{unanswered} of them unanswered."
                )
        if created:
            self.stdout.write(f"Created the audit log's partitions {', '.join(created)}.")
        self.stdout.write(
            f"Sealed {len(quiet)} closed and {len(due)} open span part(s), "
            f"{refusals} counted refusal record(s)."
        )
