"""The chain-health panel on the audit pages (#23): green only when the whole chain up to a recent
checkpoint is verified, amber with the next step when part of the log is not verified or not
witnessed, red when the last verification found a break; and what it says about how much."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import dateformat, timezone

from audit import chain_health
from audit.models import Action, AuditEntry, ChainCheckpoint

pytestmark = pytest.mark.django_db

URL = reverse("audit:list")
DASH = "\N{EN DASH}"  # between the ends of a range of entries, as the panel writes it


def panel(client, url: str = URL) -> tuple[str, str]:
    """The panel's colour and its text as a reader reads it."""
    page = client.get(url).content.decode()
    found = re.search(
        r'<section class="chain-status chain-status--(\w+)"[^>]*>(.*?)</section>', page, re.S
    )
    assert found, "no chain-health panel on the page"
    text = html.unescape(re.sub(r"<[^>]+>", " ", found.group(2)))
    text = re.sub(r"\s+", " ", text).strip()
    return found.group(1), re.sub(r" ([,.:])", r"\1", text)


def shown(moment) -> str:
    """A time as the log's entries show it (the test client has no time zone cookie: UTC)."""
    return dateformat.format(timezone.localtime(moment), "j M Y, H:i:s")


def verify() -> None:
    """What the daily timer runs: verify, record the result, emit a checkpoint."""
    call_command("audit_verify", stdout=io.StringIO(), stderr=io.StringIO())


def checkpoint() -> None:
    call_command("audit_checkpoint", stdout=io.StringIO())


def minutes_ago(minutes: float):
    return time_machine.travel(timezone.now() - timedelta(minutes=minutes), tick=False)


@pytest.fixture(autouse=True)
def five_minute_checkpoints(settings):
    settings.AUDIT_CHECKPOINT_INTERVAL = 300  # "recent" is then 10 minutes
    settings.AUDIT_VERIFY_WARN_AFTER_HOURS = 26
    settings.AUDIT_CHECKPOINT_FILE = ""


def test_green_when_the_whole_chain_up_to_a_recent_checkpoint_is_verified(
    auditor_client, audit_entry
):
    entries = [audit_entry() for _ in range(3)]
    verify()

    colour, text = panel(auditor_client)

    assert colour == "ok"
    assert "Chain verified: OK" in text
    assert f"entries #{entries[0].pk}{DASH}#{entries[-1].pk}: 3 of the log's 3 entries" in text
    assert "Not verified yet" not in text
    assert "What to do" not in text


def test_amber_when_only_the_oldest_entries_were_verified(auditor_client, audit_entry):
    # The case: verified when the log held one entry, many written since, the timer
    # witnessing them every five minutes; "OK (1 entry)" read as "all good".
    with minutes_ago(60):
        first = audit_entry()
        verify()
    with minutes_ago(40):
        since = [audit_entry() for _ in range(5)]
    with minutes_ago(2):
        checkpoint()

    colour, text = panel(auditor_client)

    assert colour == "warning"
    assert "Chain not fully verified." in text
    assert f"entry #{first.pk}: 1 of the log's 6 entries" in text
    assert (
        f"Not verified yet 5 entries, #{since[0].pk}{DASH}#{since[-1].pk}, written since "
        f"{shown(since[0].at)}" in text
    )
    assert "Run manage.py audit_verify to check the entries written since" in text

    verify()
    assert panel(auditor_client)[0] == "ok"


def test_entries_written_since_a_recent_verification_keep_it_green(auditor_client, audit_entry):
    with minutes_ago(6):
        audit_entry()
        verify()
    with minutes_ago(3):
        newer = audit_entry()
        checkpoint()

    colour, text = panel(auditor_client)

    assert colour == "ok"
    assert f"Not verified yet 1 entry, #{newer.pk}, written since {shown(newer.at)}" in text
    assert "the next audit_verify checks it" in text


def test_amber_when_the_checkpoint_timer_stopped(auditor_client, audit_entry):
    with minutes_ago(30):
        witnessed = audit_entry()
        verify()
    with minutes_ago(20):
        unwitnessed = [audit_entry(), audit_entry()]

    colour, text = panel(auditor_client)

    assert colour == "warning"
    assert (
        "entries written since the last verification are not checked yet, and no recent "
        "checkpoint has witnessed the newest entries." in text
    )
    assert f"at entry #{witnessed.pk} (1 entry), witnessed outside the database" in text
    assert "more than 10 minutes ago" in text
    assert (
        f"2 entries after it, written since {shown(unwitnessed[0].at)}, are not witnessed" in text
    )
    assert "Check that the audit_checkpoint timer still runs" in text
    assert "systemctl status connvo-audit-checkpoint.timer" in text


def test_amber_when_the_last_verification_is_old_even_with_nothing_new(
    settings, auditor_client, audit_entry
):
    settings.AUDIT_VERIFY_WARN_AFTER_HOURS = 1
    with minutes_ago(90):
        audit_entry()
        verify()
    checkpoint()  # the timer runs; only the verification is old

    colour, text = panel(auditor_client)

    assert colour == "warning"
    assert "the last verification is more than 1 hour old" in text
    assert "check that its daily timer still runs" in text


def test_red_when_the_last_verification_found_a_break(auditor_client, audit_entry):
    entries = [audit_entry() for _ in range(3)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")  # as a superuser could
        cursor.execute(
            f"UPDATE {AuditEntry._meta.db_table} SET actor_username = 'x' WHERE id = %s",  # noqa: S608
            [entries[1].pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")
    with pytest.raises(SystemExit):
        verify()

    colour, text = panel(auditor_client)
    page = auditor_client.get(URL).content.decode()

    assert colour == "error"
    assert "Chain BROKEN: the verification of" in text
    assert f"found a broken link at entry #{entries[1].pk}" in text
    assert "1 entry checked out before the break" in text
    assert reverse("audit:entry", args=[entries[1].pk]) in page
    assert 'role="alert"' in page


def test_never_verified_counts_the_whole_log_as_not_verified(auditor_client, audit_entry):
    entries = [audit_entry(), audit_entry()]

    colour, text = panel(auditor_client)

    assert colour == "warning"
    assert "Chain never verified." in text
    assert f"2 entries, #{entries[0].pk}{DASH}#{entries[1].pk}" in text
    assert "No checkpoint witnessed yet." in text
    assert "to check the whole log" in text
    assert "Run manage.py audit_checkpoint every 5 minutes" in text


def test_the_next_step_names_the_checkpoint_file(settings, auditor_client, audit_entry, tmp_path):
    audit_entry()
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")

    _, text = panel(auditor_client)

    assert f"manage.py audit_verify --checkpoint {tmp_path / 'checkpoints.jsonl'}" in text


def test_counts_stop_at_their_bound(monkeypatch, auditor_client, audit_entry):
    monkeypatch.setattr(chain_health, "COUNT_BOUND", 3)
    with minutes_ago(60):
        audit_entry()
        verify()
    with minutes_ago(30):
        for _ in range(5):
            audit_entry()
    checkpoint()

    _, text = panel(auditor_client)

    assert "Not verified yet more than 3 entries" in text
    assert "of the log's" not in text  # not a figure it does not know


def test_a_purge_since_the_checkpoint_is_not_counted_as_if_nothing_went(
    auditor_client, audit_entry
):
    with minutes_ago(60):
        audit_entry()
        verify()
    audit_entry(action=Action.AUDIT_PURGED, detail="count=0")

    _, text = panel(auditor_client)

    assert "of the log's" not in text


def test_the_panel_counts_only_the_entries_after_a_verification_or_checkpoint(
    auditor_client, audit_entry
):
    with minutes_ago(60):
        for _ in range(20):
            audit_entry()
        verify()
    audit_entry()

    with CaptureQueriesContext(connection) as queries:
        chain_health.chain_health(now=timezone.now())

    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the panel counts the entries after the verification"
    for sql in counts:
        # An id range from a recorded end, stopped at a bound: never the whole table.
        assert '"id" >' in sql and "LIMIT" in sql.upper(), sql


def test_an_entry_page_shows_the_same_panel(auditor_client, audit_entry):
    entry = audit_entry()
    verify()

    colour, text = panel(auditor_client, reverse("audit:entry", args=[entry.pk]))

    assert colour == "ok"
    assert "1 of the log's 1 entry" in text


def test_a_stored_checkpoint_without_entries_is_an_empty_log(auditor_client):
    verify()  # an empty log verifies, and its checkpoint witnesses "no entry"

    colour, text = panel(auditor_client)

    assert ChainCheckpoint.objects.get().last_entry_id is None
    assert colour == "ok"
    assert "the log was empty when last verified" in text


def test_an_entry_says_whether_the_last_verification_covered_it(auditor_client, audit_entry):
    older = audit_entry()
    verify()
    newer = audit_entry()

    def verified(entry) -> str:
        page = auditor_client.get(reverse("audit:entry", args=[entry.pk])).content.decode()
        found = re.search(r"<dt>Verified</dt><dd>(.*?)</dd>", page, re.S)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1))).strip()

    assert verified(older).startswith("Yes, OK on ")
    assert verified(newer).startswith("Not yet: written after the last verification")


def test_a_quiet_log_verified_long_ago_is_amber_only_for_its_stopped_timer(
    auditor_client, audit_entry
):
    with minutes_ago(30):
        audit_entry()
        verify()

    colour, text = panel(auditor_client)

    assert colour == "warning"
    assert "Nothing wrong was found, but no recent checkpoint has witnessed the newest" in text
    assert "Not verified yet" not in text  # nothing was written since
    assert "manage.py audit_verify" not in text  # the verification is not what is missing
    assert "Check that the audit_checkpoint timer still runs" in text
