"""Print the audit log's "worth a look" flags, for a person or for cron and alerting."""

import json as jsonlib
import re
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import insights, rollup

DURATION = re.compile(r"^(\d+)([hd])$")


def _moment(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO date-time (UTC unless it says otherwise); with `now`, also a span: 24h, 7d."""
    text = text.strip()
    if now is not None and (match := DURATION.match(text)):
        amount, unit = int(match.group(1)), match.group(2)
        return now - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"Not a date-time or a span like 24h or 7d: {text!r}.")
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


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
            if json:
                self.stdout.write(_json_line(flag.as_json()))
            else:
                self.stdout.write(f"[{flag.kind}] {flag.sentence} {flag.link}")
        if not json and not flags:
            self.stdout.write("Nothing stands out.")


def _json_line(document: dict) -> str:
    return jsonlib.dumps(document, sort_keys=True, ensure_ascii=False)
