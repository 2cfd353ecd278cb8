"""`make demo`: the console on the embedded default, against fake Connvo deployments on loopback.

Starts a fake Connvo for every configured deployment whose URL is on this machine (production-
marked ones redact errors as Convex does in production; ones with WorkOS settings also play
WorkOS AuthKit), creates the demo login with its Connvo account connected (or a token saved) on
each of them, and serves the console until Ctrl-C.
"""

from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import Origin
from meetings import connect, pasted_tokens, workos_auth
from meetings.deployments import deployments

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Command(BaseCommand):
    help = "Run the console against fake Connvo deployments with seeded meetings and a demo login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument(
            "--access-token-ttl",
            type=int,
            default=120,
            help="lifetime of the fake WorkOS access tokens, seconds (real ones: about 300)",
        )

    def handle(
        self, *args, addrport: str, username: str, password: str, access_token_ttl: int, **options
    ) -> None:
        try:
            from fakeconnvo import FakeConnvo
        except ImportError as exc:
            raise CommandError(
                "The fake Connvo deployment is not importable; run `make setup`."
            ) from exc

        fakes = {}
        for deployment in deployments().values():
            parts = urlsplit(deployment.url)
            if parts.hostname not in LOOPBACK or not parts.port:
                continue
            workos = settings.CONNVO_WORKOS.get(deployment.name)
            fake = FakeConnvo(
                live_metrics=True,
                access_token_ttl=access_token_ttl,
                **(
                    {"workos_client_id": workos["client_id"], "workos_api_key": workos["api_key"]}
                    if workos
                    else {}
                ),
            )
            if deployment.is_production:
                fake.misbehave("redact")
            fake.start(host=parts.hostname, port=parts.port)
            fakes[deployment.name] = fake
        if not fakes:
            raise CommandError(
                "No deployment in CONNVO_DEPLOYMENTS is on this machine (e.g. "
                "demo=http://127.0.0.1:8765), so there is nothing to fake. `make demo` sets this."
            )

        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username)
        if created or not user.check_password(password):
            user.set_password(password)
            user.save()
        user.groups.add(Group.objects.get(name="Support"))
        host, _, port = addrport.rpartition(":")
        base = f"http://{host}:{port}"
        for name, fake in fakes.items():
            if workos_auth.is_workos_deployment(name):
                self._connect(user, name, callback=f"{base}/connvo/callback/")
            else:
                pasted_tokens.store_token(
                    user=user,
                    deployment=name,
                    raw_token=fake.token_for("agent", expires_in=12 * 3600),
                )

        default = settings.CONNVO_DEFAULT_DEPLOYMENT
        sample = fakes.get(default) or next(iter(fakes.values()))
        self.stdout.write(self.style.SUCCESS("\nConnvo Support Console demo"))
        self.stdout.write(f"  Console:          {base}/")
        self.stdout.write(f"  Sign in as:       {username} / {password}")
        for name, fake in fakes.items():
            self.stdout.write(f"  Fake Connvo {name}: {fake.url}")
        self.stdout.write("  Meetings to try:")
        for label in ("standup", "planning", "retro", "cancelled", "minimal", "private"):
            meeting_id = sample.meeting_id(label)
            self.stdout.write(f"    {label:<10} {base}/meetings/{default}/{meeting_id}/")
        if settings.CONNVO_WORKOS:
            self.stdout.write(
                f"  Connvo access tokens last {access_token_ttl} s here; leave a meeting open and "
                "watch the console renew them (Tokens page, audit log)."
            )
        self.stdout.write("  Ctrl-C stops the console and the fake deployments.\n")
        try:
            call_command("runserver", addrport, use_reloader=False, skip_checks=True)
        finally:
            for fake in fakes.values():
                fake.stop()

    def _connect(self, user, deployment: str, *, callback: str) -> None:
        """Connect the demo login's Connvo account through the same code path as the Connect
        button, with the fake AuthKit approving the sign-in."""
        pending = connect.begin_connect(deployment=deployment, redirect_uri=callback)
        approved = requests.get(pending.url, allow_redirects=False, timeout=5)
        code = parse_qs(urlsplit(approved.headers["Location"]).query)["code"][0]
        connect.finish_connect(
            user=user,
            deployment=deployment,
            code=code,
            code_verifier=pending.code_verifier,
            origin=Origin.for_command(user),
        )
