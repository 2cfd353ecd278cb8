"""`manage.py audit_verify`, `audit_purge` and `audit_seed`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import chain
from audit.models import Action, AuditEntry, ChainVerification
from audit.services import purge_old_entries

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_verify_reports_ok_and_records_the_result(audit_entry):
    entries = [audit_entry() for _ in range(3)]

    status, out, _ = run("audit_verify")

    assert status == 0
    assert "Audit chain OK: 3 entries verified." in out
    verification = ChainVerification.objects.get()
    assert verification.ok
    assert verification.entries_checked == 3
    assert verification.first_bad_id is None
    assert verification.last_entry_id == entries[-1].pk


def test_verify_exits_1_naming_the_first_broken_entry(audit_entry):
    entries = [audit_entry() for _ in range(3)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "UPDATE audit_auditentry SET meeting_id = 'other' WHERE id = %s",
            [entries[1].pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")

    status, _, err = run("audit_verify")

    assert status == 1
    assert f"BROKEN after 1 good entries: Entry #{entries[1].pk} does not match" in err
    verification = ChainVerification.objects.get()
    assert not verification.ok
    assert verification.first_bad_id == entries[1].pk


def test_purge_deletes_old_entries_and_audits_itself(audit_entry):
    now = datetime.now(UTC)
    old = audit_entry(at=now - timedelta(days=100))
    kept = audit_entry(at=now - timedelta(days=10))

    status, out, _ = run("audit_purge", "--older-than", "90")

    assert status == 0
    assert f"Deleted 1 audit entry (through entry #{old.pk})." in out
    purge_entry = AuditEntry.objects.get(action=Action.AUDIT_PURGED)
    assert purge_entry.detail.startswith(
        f"Deleting 1 entry older than 90 days: count=1 first={old.pk} last={old.pk} "
        f"last_mac={old.mac} retention=90d cutoff="
    )
    assert purge_entry.user_agent == "manage.py"
    assert list(AuditEntry.objects.order_by("id")) == [kept, purge_entry]
    assert run("audit_verify")[0] == 0


def test_purge_refuses_a_retention_below_the_one_in_force(settings, audit_entry):
    settings.AUDIT_MIN_RETENTION_DAYS = 90
    audit_entry(at=datetime.now(UTC) - timedelta(days=100))

    with pytest.raises(CommandError, match="below the retention in force"):
        call_command("audit_purge", "--older-than", "30")

    assert AuditEntry.objects.count() == 1
    assert not AuditEntry.objects.filter(action=Action.AUDIT_PURGED).exists()


def test_purge_refuses_less_than_a_day(db):
    with pytest.raises(CommandError, match="at least 1 day"):
        call_command("audit_purge", "--older-than", "0")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "1000000"], r"is older than anything a date can hold: .* or less\."),
        (["--older-than", "400", "--batch-size", "0"], r"--batch-size: at least 1 entry, not '0'"),
        (
            ["--older-than", "400", "--batch-size", "-5"],
            r"--batch-size: at least 1 entry, not '-5'",
        ),
    ],
)
def test_purge_refuses_arguments_it_cannot_carry_out_before_writing_anything(
    audit_entry, args, message
):
    # The purge's own entry says what will be deleted: written for a purge that then stops,
    # it would stand in the chain for entries that are all still there.
    old = audit_entry(at=datetime.now(UTC) - timedelta(days=500))
    audit_entry()

    with pytest.raises(CommandError, match=message):
        call_command("audit_purge", *args)

    assert not AuditEntry.objects.filter(action=Action.AUDIT_PURGED).exists()
    assert AuditEntry.objects.filter(pk=old.pk).exists()
    assert chain.verify().ok


def test_purge_takes_the_oldest_retention_a_date_can_hold(audit_entry):
    audit_entry(at=datetime.now(UTC) - timedelta(days=500))
    longest = (datetime.now(UTC) - datetime(1, 1, 1, tzinfo=UTC)).days

    status, out, _ = run("audit_purge", "--older-than", str(longest))

    assert (status, out) == (0, "Deleted 0 audit entries.\n")
    assert chain.verify().ok


def test_purge_with_a_batch_larger_than_a_database_offset_deletes_them_all(audit_entry):
    # `audit_purge --batch-size` takes no more than SQL carries (tests/
    # test_audit_command_arguments.py); the purge itself takes any batch.
    old = [audit_entry(at=datetime.now(UTC) - timedelta(days=500)) for _ in range(2)]
    kept = audit_entry()

    result = purge_old_entries(retention_days=400, batch_size=10**20)

    assert (result.deleted, result.through_id) == (2, old[-1].pk)
    assert AuditEntry.objects.exclude(action=Action.AUDIT_PURGED).get() == kept
    assert chain.verify().ok


def test_seed_writes_realistic_entries_that_verify(db):
    status, out, _ = run(
        "audit_seed",
        "--rows",
        "600",
        "--batch-size",
        "250",
        "--random-seed",
        "1",
        "--bench-database",
    )

    assert status == 0
    assert "Seeded 600 audit entries" in out
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {Action.LOOKUP, Action.SIGN_IN} <= actions
    vias = set(AuditEntry.objects.values_list("via", flat=True))
    assert {"page", "refresh"} <= vias
    assert not AuditEntry.objects.filter(actor__isnull=False).exists()
    stamps = list(AuditEntry.objects.order_by("id").values_list("at", flat=True))
    assert stamps == sorted(stamps)
    assert stamps[-1] <= datetime.now(UTC)
    assert chain.verify().ok


def test_seed_continues_an_existing_chain(audit_entry):
    audit_entry()
    run("audit_seed", "--rows", "50", "--bench-database")
    audit_entry()

    assert chain.verify().entries_checked == 52


def test_purge_refuses_a_chain_that_does_not_verify(settings, audit_entry):
    old = audit_entry(at=datetime.now(UTC) - timedelta(days=100))
    audit_entry()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE audit_auditentry SET detail = 'edited' WHERE id = %s", [old.pk])
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")

    with pytest.raises(CommandError, match="Nothing deleted: the audit chain does not verify"):
        call_command("audit_purge", "--older-than", "90")

    assert AuditEntry.objects.filter(pk=old.pk).exists()
