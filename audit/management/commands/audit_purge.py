"""Delete old audit entries, keeping the rest of the chain verifiable; the purge is audited."""

import getpass
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import chain
from audit.models import Action
from audit.services import Origin, record


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


class Command(BaseCommand):
    help = (
        "Delete audit entries older than DAYS days, oldest first, in chain order (never one that "
        "is newer), and remember the last deleted entry's MAC so `audit_verify` still passes. "
        "Writes an audit entry saying what it deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument(
            "--batch-size", type=int, default=10_000, help="entries deleted per transaction"
        )

    def handle(self, *args, older_than: int, batch_size: int, **options) -> None:
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")
        result = chain.purge(older_than=timedelta(days=older_than), batch_size=batch_size)
        through = f" (through entry #{result.through_id})" if result.through_id else ""
        record(
            origin=Origin(user=None, username="", user_agent="manage.py"),
            action=Action.AUDIT_PURGED,
            detail=(
                f"audit_purge --older-than {older_than} deleted {result.deleted} entries from "
                f"before {result.cutoff:%Y-%m-%d %H:%M} UTC{through}; run by OS user {_os_user()}."
            ),
        )
        self.stdout.write(self.style.SUCCESS(f"Deleted {result.deleted:,} audit entries{through}."))
