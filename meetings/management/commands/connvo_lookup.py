"""Look up one meeting, or many, as a staff member from the command line, through the same code
paths (and the same audit log) as the meeting page and the triage table."""

import json
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from audit.models import Via
from audit.services import Origin
from connvo_admin.meeting_ids import InvalidMeetingId
from connvo_admin.outcomes import LookupFailed
from meetings import connvo
from meetings.lookups import Answer, AuditUnavailable, Wanted, audited_lookup, look_up
from meetings.references import parse_meeting_references

EXIT_FAILED = 1


class Command(BaseCommand):
    help = (
        "Look up Connvo meetings as USER. With --json, print one JSON line per meeting, in the "
        'order given: Connvo\'s meeting object, or {"meeting_id": ..., "error": KIND, "message": '
        "...}. Exits 0 only if every meeting was found. References may be IDs or links, or text "
        "that contains them (--file - reads them from standard input)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "meeting_ids", nargs="*", metavar="ID", help="meeting ids, or links that contain one"
        )
        parser.add_argument(
            "--file", default=None, help="read references from this file ('-': standard input)"
        )
        parser.add_argument("--user", required=True, help="console username whose token to use")
        parser.add_argument("--deployment", default=None, help="deployment name")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, meeting_ids: list[str], user: str, deployment: str | None, **options):
        as_json = options["json"]
        deployment = deployment or settings.CONNVO_DEFAULT_DEPLOYMENT
        try:
            staff = get_user_model().objects.get_by_natural_key(user)
        except get_user_model().DoesNotExist:
            self._fail(as_json, "unknown_user", f"There is no console user called {user!r}.")
        if len(meeting_ids) == 1 and options["file"] is None:
            self._look_up_one(staff, deployment, meeting_ids[0], as_json)
            return
        text = "\n".join(meeting_ids)
        if options["file"] is not None:
            text += "\n" + self._read(options["file"], as_json)
        self._look_up_many(staff, deployment, text, as_json)

    def _read(self, path: str, as_json: bool) -> str:
        if path == "-":
            return sys.stdin.read()
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                return file.read()
        except OSError as exc:
            self._fail(as_json, "unreadable_file", f"Cannot read {path}: {exc.strerror}.")

    def _look_up_one(self, staff, deployment: str, reference: str, as_json: bool) -> None:
        try:
            result = audited_lookup(
                user=staff,
                origin=Origin.for_command(staff),
                deployment_name=deployment,
                meeting_ref=reference,
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
        self._describe(meeting, deployment)

    def _look_up_many(self, staff, deployment: str, text: str, as_json: bool) -> None:
        try:
            found = parse_meeting_references(text)
        except InvalidMeetingId as error:
            self._fail(as_json, error.kind, error.message)
        for rejected in found.rejected:
            self.stderr.write(f"not a meeting ID, skipped: {rejected.text}: {rejected.reason}")
        try:
            rows = look_up(
                user=staff,
                origin=Origin.for_command(staff),
                wanted=[Wanted(deployment, meeting_id) for meeting_id in found.ids],
                via=Via.CLI,
            )
        except AuditUnavailable as error:
            self._fail(as_json, "audit_unavailable", error.message)
        for row in rows:
            if as_json:
                self.stdout.write(json.dumps(_json_line(row), sort_keys=True))
            elif row.meeting:
                self._describe(row.meeting, deployment)
            else:
                self.stdout.write(f"{row.meeting_id}  {row.error.kind}: {row.error.message}")
        if found.rejected or any(row.error for row in rows):
            raise SystemExit(EXIT_FAILED)

    def _describe(self, meeting: connvo.Meeting, deployment: str) -> None:
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


def _json_line(row: Answer) -> dict:
    if row.meeting is not None:
        return dict(row.meeting.raw)
    line = {"meeting_id": row.meeting_id, "error": row.error.kind, "message": row.error.message}
    if row.error.request_id:
        line["request_id"] = row.error.request_id
    return line
