"""Witness the audit chain's tail: a signed checkpoint to the JSON log and AUDIT_CHECKPOINT_FILE.
Run it every AUDIT_CHECKPOINT_INTERVAL seconds from a systemd timer (docs/deploy.md)."""

from django.core.management.base import BaseCommand, CommandError

from audit import chain


class Command(BaseCommand):
    help = (
        "Emit a checkpoint of the audit chain (newest entry id, its MAC, the entry count, the "
        "time), signed with the current AUDIT_CHAIN_KEY key, as a JSON log line and to "
        "AUDIT_CHECKPOINT_FILE. `audit_verify --checkpoint` later checks that the chain still "
        "contains it. Costs a count of the log; never touches a lookup."
    )

    def handle(self, *args, **options) -> None:
        try:
            checkpoint = chain.checkpoint_now()
        except chain.CheckpointRefused as error:
            raise CommandError(f"No checkpoint written: {error}") from None
        except OSError as error:
            raise CommandError(f"Could not append to AUDIT_CHECKPOINT_FILE: {error}") from None
        at = f"entry #{checkpoint.last_id}" if checkpoint.last_id else "an empty log"
        self.stdout.write(f"Checkpoint at {at} ({checkpoint.entries:,} entries).")
