"""Provision a staff member's Connvo token from the command line (the token is read from stdin,
so it never appears in the shell history or the process list)."""

import getpass
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import Origin
from meetings import connect, credentials, pasted_tokens, workos_auth
from meetings.deployments import UnknownDeployment, get_deployment
from meetings.models import StaffToken


class Command(BaseCommand):
    help = "Set, remove or show a staff member's Connvo token. `set` reads the token from stdin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["set", "remove", "show"])
        parser.add_argument("--user", required=True, help="console username")
        parser.add_argument("--deployment", help="deployment name (required for set and remove)")

    def handle(self, *args, action: str, user: str, deployment: str | None, **options) -> None:
        try:
            staff = get_user_model().objects.get_by_natural_key(user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"There is no console user called {user!r}.") from None
        if action == "show":
            self._show(staff)
            return
        if not deployment:
            raise CommandError(f"--deployment is required for {action}.")
        try:
            get_deployment(deployment)
        except UnknownDeployment as exc:
            raise CommandError(exc.message) from None
        origin = Origin(
            user=staff,
            username=staff.get_username(),
            user_agent=f"manage.py connvo_token (OS user {getpass.getuser()})",
        )
        if action == "remove":
            # A connected session is ended at WorkOS too, as the Tokens page's Disconnect does.
            if connect.forget(user=staff, deployment_name=deployment, origin=origin):
                self.stdout.write(f"Removed {user}'s Connvo credential for {deployment}.")
            else:
                self.stdout.write(f"{user} had no token for {deployment}.")
            return
        if not workos_auth.takes_pasted_tokens(deployment):
            # Before the token is read: nobody is asked for a secret that will not be kept.
            raise CommandError(str(credentials.PasteNotTaken(deployment)))
        if sys.stdin.isatty():
            self.stderr.write("Paste the token, then press Enter:")
        raw = sys.stdin.readline()
        try:
            saved = pasted_tokens.save_token(
                user=staff, deployment_name=deployment, raw_token=raw, origin=origin
            )
        except pasted_tokens.TokenNotAccepted as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Saved {user}'s token for {deployment} (…{saved.last4}, Connvo user "
            f"{saved.subject or 'unknown'}, expires {saved.expires_at or 'never'})."
        )

    def _show(self, staff) -> None:
        rows = StaffToken.objects.filter(user=staff).order_by("deployment")
        if not rows:
            self.stdout.write(f"{staff.get_username()} has no Connvo tokens.")
        for row in rows:
            self.stdout.write(
                f"{row.deployment}\t…{row.last4}\t{row.subject or '-'}\t"
                f"expires {row.expires_at or 'never'}"
            )
