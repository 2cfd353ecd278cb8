"""Look up a meeting as a staff member from the command line, through the same code path (and
the same audit log) as the meeting page."""

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from audit.models import Via
from audit.services import Origin
from connvo_admin.outcomes import LookupFailed
from meetings.lookups import audited_lookup

EXIT_FAILED = 1


class Command(BaseCommand):
    help = (
        "Look up a Connvo meeting as USER. With --json, print Connvo's meeting object on success, "
        'or {"error": KIND, "message": ...} on failure (exit status 1).'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("meeting_id", help="meeting id, or a link that contains one")
        parser.add_argument("--user", required=True, help="console username whose token to use")
        parser.add_argument("--deployment", default=None, help="deployment name")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, meeting_id: str, user: str, deployment: str | None, **options):
        as_json = options["json"]
        deployment = deployment or settings.CONNVO_DEFAULT_DEPLOYMENT
        try:
            staff = get_user_model().objects.get_by_natural_key(user)
        except get_user_model().DoesNotExist:
            self._fail(as_json, "unknown_user", f"There is no console user called {user!r}.")
        try:
            result = audited_lookup(
                user=staff,
                origin=Origin.for_command(staff),
                deployment_name=deployment,
                meeting_ref=meeting_id,
                via=Via.CLI,
            )
        except LookupFailed as failure:
            self._fail(as_json, failure.kind, failure.message, failure.request_id, failure.detail)

        meeting = result.meeting
        for drift in meeting.drift:
            # The meeting as sent still goes to stdout; what the console could not read, here.
            self.stderr.write(f"contract drift: {drift}")
        if as_json:
            self.stdout.write(json.dumps(meeting.raw, sort_keys=True))
            return
        self.stdout.write(f"{meeting.title}  [{meeting.id}] on {deployment}")
        self.stdout.write(
            f"  state {meeting.state}; you are {meeting.user_role}, {meeting.user_presence}"
        )
        participants = "-" if meeting.participant_count is None else meeting.participant_count
        self.stdout.write(
            f"  participants {participants}; "
            f"active WebRTC sessions {meeting.active_webrtc_sessions}"
        )

    def _fail(
        self,
        as_json: bool,
        kind: str,
        message: str,
        request_id: str | None = None,
        detail: str = "",
    ):
        if as_json:
            body = {"error": kind, "message": message}
            if request_id:
                body["request_id"] = request_id
            self.stdout.write(json.dumps(body))
        else:
            self.stderr.write(f"{kind}: {message}")
            if request_id:
                self.stderr.write(f"Connvo request ID: {request_id}")
            if detail:
                self.stderr.write(f"Connvo said: {detail}")
        raise SystemExit(EXIT_FAILED)
