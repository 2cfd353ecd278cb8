"""Print the audit log's "worth a look" flags, for a person or for cron and alerting."""

import json as jsonlib
import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import insights, rollup

DURATION = re.compile(r"^(\d+)([hd])$")
DAY = timedelta(days=1)


def _moment(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO date-time (UTC unless it says otherwise); with `now`, also a span: 24h, 7d."""
    text = text.strip()
    if now is not None and (match := DURATION.match(text)):
        amount, unit = match.group(1), match.group(2)
        try:
            span = timedelta(hours=int(amount)) if unit == "h" else timedelta(days=int(amount))
            moment = now - span
        except (OverflowError, ValueError):
            # More days than a timedelta holds, more digits than int() reads, or a start
            # before the year 1.
            raise CommandError(_out_of_range(text)) from None
        return _within_calendar(moment, text)
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"Not a date-time or a span like 24h or 7d: {_shown(text)}.")
    return _within_calendar(
        moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC), text
    )


def _within_calendar(moment: datetime, text: str) -> datetime:
    """`moment`, when the flags can be worked out around it: they read the baseline days before
    the window and round its ends to whole hours and days (UTC), none of which Python's dates
    can do within a day or a baseline of the years 1 and 9999."""
    try:
        earliest = datetime.min.replace(tzinfo=UTC) + DAY * (settings.AUDIT_FLAG_BASELINE_DAYS + 1)
        latest = datetime.max.replace(tzinfo=UTC) - DAY
        # astimezone overflows when the moment's own offset moves it past either end.
        in_range = earliest <= moment.astimezone(UTC) <= latest
    except OverflowError:
        in_range = False
    if not in_range:
        raise CommandError(_out_of_range(text))
    return moment


def _out_of_range(text: str) -> str:
    return (
        f"{_shown(text)} is out of range: the window, and the {settings.AUDIT_FLAG_BASELINE_DAYS} "
        "days before it that the flags compare it with (AUDIT_FLAG_BASELINE_DAYS), must lie "
        "between the years 1 and 9999."
    )


def _shown(text: str) -> str:
    """The argument as the error quotes it: a five-thousand-digit span is not worth repeating."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


class Command(BaseCommand):
    help = (
        "Print the staff members whose recent lookups stand out (the audit log's 'worth a look'): "
        "one sentence each, or JSON Lines with --json. Exit status 0 either way."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", default="24h", help="start of the window: 24h, 7d or an ISO date-time"
        )
        parser.add_argument(
            "--now",
            default="",
            help="end of the window (default: now); the same log and --now give the same flags",
        )
        parser.add_argument("--json", action="store_true", help="JSON Lines, one flag a line")

    def handle(self, *args, since: str, now: str, json: bool, **options) -> None:
        end = _moment(now) if now else timezone.now()
        start = _moment(since, now=end)
        if start >= end:
            raise CommandError("--since must be before --now.")
        rollup.catch_up()
        flags = insights.find_flags(now=end, since=start)
        for flag in flags:
            behind = insights.records_behind(flag)
            if json:
                self.stdout.write(_json_line(flag.as_json() | {"records": behind}))
            else:
                self.stdout.write(f"[{flag.kind}] {flag.sentence} {flag.link}")
                for words in behind:
                    self.stdout.write(f"    {words}")
        if not json and not flags:
            self.stdout.write("Nothing stands out.")


def _json_line(document: dict) -> str:
    return jsonlib.dumps(document, sort_keys=True, ensure_ascii=False)
