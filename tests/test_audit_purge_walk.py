"""The walk `audit_purge` makes before deleting (audit/services.py `purge_old_entries`): after a
recent successful walk of the whole chain that read everything the purge deletes, only the
entries since that walk are read again; otherwise the whole chain is, as before. Either way a
chain that does not verify is not purged."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F

from audit.models import Action, AuditEntry, ChainVerification
from tests.test_audit_chain import tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def walked(audit_entry, settings):
    """Three entries 40 days old and two recent ones, walked whole by the monthly
    `audit_verify` just now (30-day retention, walks recent for 26 hours)."""
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    settings.AUDIT_VERIFY_WARN_AFTER_HOURS = 26
    now = datetime.now(UTC)
    old = [audit_entry(at=now - timedelta(days=40, minutes=n)) for n in (3, 2, 1)]
    recent = [audit_entry(at=now - timedelta(days=1)), audit_entry(at=now)]
    call_command("audit_verify", stdout=io.StringIO())
    return old, recent


def purge() -> str:
    out = io.StringIO()
    call_command("audit_purge", "--older-than", "30", stdout=out)
    return out.getvalue()


def change(entry: AuditEntry) -> None:
    tamper("UPDATE audit_auditentry SET detail = 'edited' WHERE id = %s", [entry.pk])


def verify() -> str:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command("audit_verify", stdout=out, stderr=err)
    return err.getvalue()


def test_a_tampered_entry_after_the_last_full_walk_is_still_found_by_the_purges_walk(
    walked, audit_entry
):
    old, _ = walked
    since = [audit_entry(), audit_entry()]
    change(since[0])

    with pytest.raises(CommandError, match="Nothing deleted: the audit chain does not verify"):
        purge()

    assert AuditEntry.objects.filter(pk__in=[e.pk for e in old]).count() == 3
    assert not AuditEntry.objects.filter(action=Action.AUDIT_PURGED).exists()


def test_a_recent_whole_walk_is_not_made_again_and_the_next_one_finds_what_it_skipped(walked):
    """The price of not reading a year again: an entry changed since the monthly walk but
    before where it ended is not read by the purge (which goes on), and is found by the next
    whole walk."""
    old, recent = walked
    change(recent[0])

    assert "Deleted 3 audit entries" in purge()

    assert not AuditEntry.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert f"Entry #{recent[0].pk} does not match its MAC" in verify()


def test_with_no_recent_walk_the_whole_chain_is_walked(walked):
    old, _ = walked
    ChainVerification.objects.update(at=F("at") - timedelta(hours=27))
    change(old[1])

    with pytest.raises(CommandError, match=f"Entry #{old[1].pk} does not match its MAC"):
        purge()

    assert AuditEntry.objects.filter(pk=old[1].pk).exists()


def test_with_no_walk_at_all_the_whole_chain_is_walked(walked):
    old, _ = walked
    ChainVerification.objects.all().delete()
    change(old[0])

    with pytest.raises(CommandError, match=f"Entry #{old[0].pk} does not match its MAC"):
        purge()


def test_a_recent_walk_that_ended_before_what_the_purge_deletes_does_not_count(
    audit_entry, settings
):
    settings.AUDIT_MIN_RETENTION_DAYS = 30
    at = datetime.now(UTC) - timedelta(days=40)
    first = audit_entry(at=at)
    call_command("audit_verify", stdout=io.StringIO())
    later = [audit_entry(at=at + timedelta(minutes=n)) for n in (1, 2)]
    audit_entry()
    change(first)

    with pytest.raises(CommandError, match=f"Entry #{first.pk} does not match its MAC"):
        purge()

    assert AuditEntry.objects.filter(pk__in=[first.pk, *(e.pk for e in later)]).count() == 3


def test_a_walk_from_a_checkpoint_is_not_the_whole_walk_a_purge_may_skip(walked):
    """Only a whole walk read the entries the purge deletes: a daily walk from a checkpoint
    since does not let the purge skip them."""
    old, _ = walked
    ChainVerification.objects.update(at=F("at") - timedelta(hours=27))
    change(old[2])
    call_command("audit_verify", "--since-checkpoint", stdout=io.StringIO())
    assert ChainVerification.objects.filter(ok=True, from_entry_id__isnull=False).exists()

    with pytest.raises(CommandError, match=f"Entry #{old[2].pk} does not match its MAC"):
        purge()
