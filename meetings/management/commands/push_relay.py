"""The host's push relay (meetings/relay.py): holds the Connvo WebSockets of every push stream on
this host and records each pushed answer before a push worker shows it. One per host, beside the
push server (docs/deploy.md: connvo-console-relay.service); it runs until SIGTERM or SIGINT."""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from meetings import relay


class Command(BaseCommand):
    help = (
        "Run the host's push relay on the Unix socket CONNVO_PUSH_RELAY (or --socket) until "
        "stopped: the push server's workers follow their pages' meetings through it, and it "
        "records each answer Connvo pushes before passing it on."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--socket",
            default=None,
            help="the socket's path (default: CONNVO_PUSH_RELAY)",
        )

    def handle(self, *args, socket: str | None, **options) -> None:
        path = socket or settings.CONNVO_PUSH_RELAY
        if not path:
            raise CommandError(
                "CONNVO_PUSH_RELAY is empty: pushed answers are recorded in the push workers, "
                "and no relay is needed. Set it to the socket's path (docs/deploy.md)."
            )
        try:
            asyncio.run(relay.serve(path))
        except OSError as error:
            raise CommandError(f"The push relay cannot listen on {path}: {error}") from None
