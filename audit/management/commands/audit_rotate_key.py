"""Move the audit chain to a new key (the first of AUDIT_CHAIN_KEY) with a chained entry."""

from django.core.management.base import BaseCommand, CommandError

from audit import chain
from audit.services import NothingToRotate, rotate_chain_key


class Command(BaseCommand):
    help = (
        "Rotate the audit chain's key: write one entry, under the key in use, that names the id "
        "of the first key of AUDIT_CHAIN_KEY (never the key itself); every later entry is written "
        "under that key. Put the new key first in AUDIT_CHAIN_KEY on every host before running "
        "it (docs/deploy.md, 'Rotating keys')."
    )

    def handle(self, *args, **options) -> None:
        try:
            new = rotate_chain_key()
        except NothingToRotate as error:
            raise CommandError(
                f"{error} Put the new key first in AUDIT_CHAIN_KEY (and restart) to rotate."
            ) from None
        except chain.ChainKeyMissing as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"The audit chain now uses key {new}."))
