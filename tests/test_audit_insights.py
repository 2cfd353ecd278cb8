"""'Worth a look': flags computed from the log itself, against each staff member's own habits,
for the audit page and `manage.py audit_insights`."""

from __future__ import annotations

import io
import json
import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from audit import insights, rollup, seeding
from audit.management.commands.audit_insights import _moment
from tests.audit_patterns import BUSY, INSIDER, NEWCOMER, NOW, TEAM, lookup, team_activity
from tests.conftest import shared_rows

pytestmark = pytest.mark.django_db


def flagged(flags) -> set[tuple[str, str]]:
    return {(flag.kind, flag.staff) for flag in flags}


def insider_last_day() -> tuple[int, int]:
    """The insider's lookups (refreshes aside) in the 24 hours before NOW, and the not-visible
    ones among them, counted straight from the seeded pattern."""
    recent = [
        entry
        for entry in team_activity()
        if entry["actor_username"] == INSIDER
        and entry["via"] != "refresh"
        and entry["at"] >= NOW - timedelta(hours=24)
    ]
    return len(recent), sum(entry["outcome"] == "not_visible" for entry in recent)


class TestTheTeamsLog:
    """Three weeks of a team's lookups with a probing insider, seeded once for these tests
    (`shared_rows`: each test's own writes are still rolled back)."""

    @pytest.fixture(scope="class")
    @classmethod
    def team(cls, django_db_setup, django_db_blocker):
        with shared_rows(django_db_blocker):
            seeding.append(team_activity())
            rollup.catch_up()
            yield

    def test_the_probing_insider_is_flagged_on_every_count_and_no_one_else(self, team):
        flags = insights.find_flags(now=NOW)

        assert flagged(flags) == {
            ("volume", INSIDER),
            ("not_visible", INSIDER),
            ("many_meetings", INSIDER),
            ("off_hours", INSIDER),
        }

    def test_flags_say_what_stands_out_with_figures_and_a_link_to_the_entries(self, team):
        by_kind = {flag.kind: flag for flag in insights.find_flags(now=NOW)}

        lookups, not_visible = insider_last_day()
        probing = by_kind["not_visible"]
        assert probing.figures == {"lookups": lookups, "not_visible": not_visible}
        assert probing.sentence.startswith(f"{not_visible} of {INSIDER}'s {lookups} lookups")
        assert probing.link == (
            reverse("audit:staff", args=[INSIDER]) + "?since=2026-06-14&until=2026-06-15"
            "&outcome=not_visible"
        )
        night = by_kind["off_hours"]
        assert night.figures == {"lookups": 150, "hours_utc": [2, 3]}
        assert night.sentence.endswith("they never worked in the 30 days before: 02:00, 03:00 UTC.")
        many = by_kind["many_meetings"]
        assert many.figures == {"meetings": 80}  # 02:00-02:59: 80 of the 150, one every 45 s
        assert many.since == NOW.replace(day=15, hour=2)

    def test_same_log_and_same_now_give_the_same_flags(self, team):
        first = insights.find_flags(now=NOW)
        seeding.append([lookup("alice", NOW + timedelta(hours=3), "later".ljust(32, "x"))])
        rollup.catch_up()

        assert insights.find_flags(now=NOW) == first

    def test_busy_staff_and_newcomers_are_compared_with_themselves(self, team):
        names = {flag.staff for flag in insights.find_flags(now=NOW)}

        assert BUSY not in names  # 135 lookups a day, as every day
        assert NEWCOMER not in names  # no history, and too few lookups to matter
        assert not names & set(TEAM)

    def test_thresholds_are_settings(self, team, settings):
        settings.AUDIT_FLAG_MEETINGS_PER_HOUR = 81
        settings.AUDIT_FLAG_NOT_VISIBLE_SHARE = 0.7
        settings.AUDIT_FLAG_MIN_LOOKUPS = 10

        flags = insights.find_flags(now=NOW)

        assert ("many_meetings", INSIDER) not in flagged(flags)
        assert ("not_visible", INSIDER) not in flagged(flags)  # about two thirds
        assert ("volume", NEWCOMER) in flagged(
            flags
        )  # 12 lookups and no history: over a minimum of 10

    def test_an_earlier_window_sees_nothing_of_the_night(self, team):
        flags = insights.find_flags(now=NOW - timedelta(days=1))

        assert flags == []

    def test_the_audit_log_shows_the_flags_with_links(self, auditor_client, team):
        with time_machine.travel(NOW, tick=False):
            page = auditor_client.get(reverse("audit:list")).content.decode()

        assert "Worth a look" in page
        lookups, not_visible = insider_last_day()
        assert (
            f"{not_visible} of {INSIDER}&#x27;s {lookups} lookups were of meetings they are not a "
            "participant of" in page
        )
        assert "outcome=not_visible" in page

    def test_the_flags_on_the_page_name_their_hour_in_the_viewers_zone(self, auditor_client, team):
        # "from 2026-06-15 02:00 UTC" on a page whose every other time is the viewer's.
        auditor_client.cookies["console_tz"] = "Europe/Berlin"
        with time_machine.travel(NOW, tick=False):
            page = auditor_client.get(reverse("audit:list")).content.decode()

        assert "different meetings within one hour (from 15 Jun 2026, 04:00 CEST)" in page
        assert "02:00 UTC)" not in page
        # The hours of the day no one saw them work, too.
        assert "they never worked in the 30 days before: 04:00, 05:00 CEST." in page
        # `audit_insights` (for cron and alerting) keeps UTC.
        (many,) = [flag for flag in insights.find_flags(now=NOW) if flag.kind == "many_meetings"]
        assert many.sentence.endswith("(from 2026-06-15 02:00 UTC).")

    @pytest.mark.parametrize(
        ("zone", "window_days", "hour_days"),
        [
            # 12:00 UTC on 14-15 June; the busiest hour 02:00 UTC on 15 June.
            ("UTC", ("2026-06-14", "2026-06-15"), ("2026-06-15", "2026-06-15")),
            # 05:00 PDT on 14-15 June; the busiest hour 19:00 PDT on 14 June.
            ("America/Los_Angeles", ("2026-06-14", "2026-06-15"), ("2026-06-14", "2026-06-14")),
            # 02:00 on 15-16 June at +14, the busiest hour 16:00 on 15 June: UTC's days lost
            # the window's last ten hours.
            ("Pacific/Kiritimati", ("2026-06-15", "2026-06-16"), ("2026-06-15", "2026-06-15")),
        ],
    )
    def test_a_flags_link_is_of_the_viewers_days_that_hold_its_period(
        self, team, zone, window_days, hour_days
    ):
        # The audit pages read From and To as whole days in the viewer's time zone.
        flags = insights.find_flags(now=NOW, zone=zoneinfo.ZoneInfo(zone))

        links = {flag.kind: flag.link for flag in flags}
        staff_page = reverse("audit:staff", args=[INSIDER])
        for kind in ("volume", "not_visible", "off_hours"):
            assert links[kind].startswith(
                f"{staff_page}?since={window_days[0]}&until={window_days[1]}"
            )
        assert links["many_meetings"] == f"{staff_page}?since={hour_days[0]}&until={hour_days[1]}"

    def test_a_filtered_log_leaves_the_flags_out(self, auditor_client, team):
        with time_machine.travel(NOW, tick=False):
            page = auditor_client.get(reverse("audit:list"), {"staff": "alice"}).content.decode()

        assert "Worth a look" not in page

    def test_command_prints_one_sentence_per_flag(self, team):
        out = io.StringIO()
        call_command("audit_insights", "--now", NOW.isoformat(), stdout=out)

        lines = out.getvalue().splitlines()
        assert len(lines) == 4
        lookups, _ = insider_last_day()
        assert lines[0].startswith(f"[volume] {INSIDER} made {lookups} lookups in 24 hours")

    def test_command_json_lines_for_alerting(self, team):
        out = io.StringIO()
        call_command(
            "audit_insights", "--now", "2026-06-15T12:00:00", "--since", "24h", "--json", stdout=out
        )

        records = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [(r["kind"], r["staff"]) for r in records] == [
            ("volume", INSIDER),
            ("not_visible", INSIDER),
            ("many_meetings", INSIDER),
            ("off_hours", INSIDER),
        ]
        assert records[0]["window"] == {
            "since": "2026-06-14T12:00:00+00:00",
            "until": "2026-06-15T12:00:00+00:00",
        }
        assert records[0]["figures"]["lookups"] == insider_last_day()[0]
        assert records[0]["link"].startswith(f"/audit/staff/{INSIDER}/?since=")


def test_a_flags_link_on_the_page_shows_its_entries_in_the_viewers_zone(
    auditor_client, audit_entry, settings
):
    """At 02:10 UTC on 15 June it is 19:10 on 14 June in Los Angeles: the link's days are the
    viewer's, so the page it opens holds the flagged lookups."""
    settings.AUDIT_FLAG_MEETINGS_PER_HOUR = 3
    flagged = [
        audit_entry(
            username="mallory",
            meeting_id=f"m{n}",
            via="page",
            outcome="found",
            calls=1,
            at=datetime(2026, 6, 15, 2, 10 + n, tzinfo=UTC),
        )
        for n in range(3)
    ]
    rollup.catch_up()
    auditor_client.cookies["console_tz"] = "America/Los_Angeles"
    with time_machine.travel(datetime(2026, 6, 15, 12, tzinfo=UTC), tick=False):
        page = auditor_client.get(reverse("audit:list")).content.decode()
        link = re.search(r'mallory looked up 3 different[^<]*<a href="([^"]+)"', page).group(1)
        shown = auditor_client.get(unescape(link)).content.decode()

    assert unescape(link) == "/audit/staff/mallory/?since=2026-06-14&until=2026-06-14"
    listed = {int(pk) for pk in re.findall(r'title="Entry #(\d+)"', shown)}
    assert listed == {entry.pk for entry in flagged}


def test_a_normal_team_raises_no_flag(db):
    seeding.append(team_activity(insider=False))
    rollup.catch_up()

    assert insights.find_flags(now=NOW) == []


def test_a_quiet_log_says_nothing_stands_out(auditor_client):
    page = auditor_client.get(reverse("audit:list")).content.decode()

    assert "Nothing unusual in the last 24 hours" in page


def test_command_counts_new_entries_itself(db):
    seeding.append(team_activity())  # nothing counted into the summaries yet
    out = io.StringIO()
    call_command("audit_insights", "--now", NOW.isoformat(), "--json", stdout=out)

    assert len(out.getvalue().splitlines()) == 4


def test_command_says_when_nothing_stands_out(db):
    out = io.StringIO()
    call_command("audit_insights", stdout=out)

    assert out.getvalue().strip() == "Nothing stands out."


@pytest.mark.parametrize("since", ["yesterday", "24", "-3h", "2026-13-01T00:00"])
def test_command_refuses_a_window_it_cannot_read(db, since):
    with pytest.raises(CommandError, match="Not a date-time"):
        call_command("audit_insights", f"--since={since}", stdout=io.StringIO())


def test_command_refuses_a_window_that_ends_before_it_starts(db):
    with pytest.raises(CommandError, match="before --now"):
        call_command(
            "audit_insights",
            "--since",
            "2026-06-16T00:00",
            "--now",
            NOW.isoformat(),
            stdout=io.StringIO(),
        )


@given(st.text(max_size=40))
def test_any_since_text_is_read_or_refused_cleanly(text):
    try:
        moment = _moment(text, now=NOW)
    except CommandError:
        return
    assert moment.tzinfo is not None
