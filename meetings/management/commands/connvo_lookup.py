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
from meetings import connvo
from meetings.lookups import Answer, AuditUnavailable, Wanted, look_up
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
            (answer,) = look_up(
                user=staff,
                origin=Origin.for_command(staff),
                wanted=[Wanted(deployment, reference)],
                via=Via.CLI,
            )
        except AuditUnavailable as error:
            self._fail(as_json, error.kind, error.message)
        if answer.error is not None:
            error = answer.error
            self._fail(
                as_json,
                error.kind,
                error.message,
                meeting_id=_meeting_id(answer),
                request_id=error.request_id,
                detail=error.detail,
            )

        meeting = answer.meeting
        for drift in meeting.drift:
            # The meeting as sent still goes to stdout; what the console could not read, here.
            self.stderr.write(f"contract drift: {drift}")
        if as_json:
            self.stdout.write(_json_line(answer))
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
            self._fail(as_json, error.kind, error.message)
        for row in rows:
            if as_json:
                self.stdout.write(_json_line(row))
            elif row.meeting:
                self._describe(row.meeting, deployment)
            else:
                self.stdout.write(_text_line(row.error.kind, row.error.message, row.meeting_id))
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
        *,
        meeting_id: str | None = None,
        request_id: str | None = None,
        detail: str = "",
    ):
        if as_json:
            self.stdout.write(_error_line(kind, message, meeting_id, request_id))
        else:
            self.stderr.write(_text_line(kind, message, meeting_id))
            if request_id:
                self.stderr.write(f"Connvo request ID: {request_id}")
            if detail:
                self.stderr.write(f"Connvo said: {detail}")
        raise SystemExit(EXIT_FAILED)


def _meeting_id(answer: Answer) -> str | None:
    """The meeting an answer is about; None for a reference that held no ID (the Answer then
    keeps the reference itself, which is not one)."""
    return None if isinstance(answer.error, InvalidMeetingId) else answer.meeting_id


def _text_line(kind: str, message: str, meeting_id: str | None) -> str:
    """A failure as the command prints it without --json, for one meeting or many: the meeting
    first when there is one ("ID  KIND: message")."""
    return f"{meeting_id}  {kind}: {message}" if meeting_id else f"{kind}: {message}"


def _error_line(kind: str, message: str, meeting_id: str | None, request_id: str | None) -> str:
    """A failure as --json prints it, for one meeting or many: {"meeting_id": ..., "error": KIND,
    "message": ...}, with Connvo's "request_id" when it gave one; no meeting_id when the failure
    is about no meeting (an unknown user, an unreadable file)."""
    line = {"error": kind, "message": message}
    if meeting_id is not None:
        line["meeting_id"] = meeting_id
    if request_id:
        line["request_id"] = request_id
    return json.dumps(line, sort_keys=True)


def _json_line(answer: Answer) -> str:
    """A meeting's --json line: Connvo's meeting object as sent, or its failure."""
    if answer.meeting is not None:
        return json.dumps(answer.meeting.raw, sort_keys=True)
    error = answer.error
    return _error_line(error.kind, error.message, _meeting_id(answer), error.request_id)
