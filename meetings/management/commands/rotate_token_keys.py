"""Re-encrypt every stored Connvo token under the newest TOKEN_ENCRYPTION_KEYS key, so older keys
can then be removed from the setting."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from meetings.credentials import InvalidToken, cipher
from meetings.models import StaffToken


class Command(BaseCommand):
    help = (
        "Re-encrypt all stored Connvo tokens with the first key of TOKEN_ENCRYPTION_KEYS. "
        "Run it after putting a new key first; then remove the old keys."
    )

    def handle(self, *args, **options) -> None:
        box = cipher()
        rotated, unreadable = 0, []
        for pk in StaffToken.objects.order_by("pk").values_list("pk", flat=True):
            # One short transaction per credential: a lookup renewing the same session waits on
            # the row lock instead of having its fresh tokens overwritten with stale ones.
            with transaction.atomic():
                stored = StaffToken.objects.select_for_update().filter(pk=pk).first()
                if stored is None:
                    continue
                try:
                    stored.ciphertext = box.rotate(bytes(stored.ciphertext))
                    if stored.refresh_ciphertext is not None:
                        stored.refresh_ciphertext = box.rotate(bytes(stored.refresh_ciphertext))
                except InvalidToken:
                    unreadable.append(f"{stored.user} on {stored.deployment}")
                    continue
                stored.save(update_fields=["ciphertext", "refresh_ciphertext"])
                rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} stored token(s) under the newest key.")
        if unreadable:
            raise CommandError(
                "These tokens cannot be decrypted with any configured key and were left as they "
                "are (their owners must save them again): " + ", ".join(unreadable)
            )
