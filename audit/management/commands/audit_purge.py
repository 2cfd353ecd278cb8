"""Delete old audit entries, keeping the rest of the chain verifiable; the purge is itself a
chained entry, written before anything is deleted."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import partitions
from audit.management.arguments import batch_size as batch_size_type
from audit.management.arguments import count
from audit.records import count_of
from audit.services import (
    BatchSizeTooSmall,
    ChainBroken,
    RetentionTooLong,
    RetentionTooShort,
    purge_old_entries,
)


class Command(BaseCommand):
    help = (
        "Delete audit entries older than DAYS days, oldest first, in chain order (never one that "
        "is newer). First writes a chained audit entry saying what it deletes (count, id range, "
        "the last one's MAC, the retention), which is what lets `audit_verify` accept the "
        "shorter chain. DAYS may not be below AUDIT_MIN_RETENTION_DAYS; a chain that does not "
        "verify is not purged. The chain is walked first: from the newest checkpoint an earlier "
        "walk verified when a whole-chain audit_verify within AUDIT_VERIFY_WARN_AFTER_HOURS read "
        "every entry to delete (run it just before), else the whole chain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=count("day", "days"), required=True, metavar="DAYS"
        )
        parser.add_argument(
            "--batch-size",
            type=batch_size_type,
            default=10_000,
            help="entries deleted per transaction",
        )

    def handle(self, *args, older_than: int, batch_size: int, **options) -> None:
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")
        try:
            result = purge_old_entries(retention_days=older_than, batch_size=batch_size)
        except RetentionTooShort as error:
            raise CommandError(
                f"--older-than {older_than} is below the retention in force: {error} "
                f"Use --older-than {settings.AUDIT_MIN_RETENTION_DAYS} or more."
            ) from None
        except RetentionTooLong as error:
            raise CommandError(
                f"--older-than {older_than} days is older than anything a date can hold: {error} "
                f"Nothing deleted; use --older-than {error.longest} or less."
            ) from None
        except BatchSizeTooSmall as error:
            raise CommandError(
                f"--batch-size {batch_size}: {error} Nothing deleted; use --batch-size 1 or more "
                "(the default is 10000)."
            ) from None
        except ChainBroken as error:
            raise CommandError(
                f"Nothing deleted: the audit chain does not verify ({error}) Deleting its oldest "
                "entries could delete the evidence; investigate with audit_verify first."
            ) from None
        # This month's partition and the next ones (PostgreSQL): the timer that runs the purge
        # keeps them coming, whatever else runs.
        partitions.ensure_partitions()
        through = f" (through entry #{result.through_id})" if result.through_id else ""
        deleted = count_of(result.deleted, "audit entry", "audit entries")
        self.stdout.write(self.style.SUCCESS(f"Deleted {deleted}{through}."))
