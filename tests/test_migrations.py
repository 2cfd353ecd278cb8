"""Every model change ships with its migration (a missing one would break the next deploy)."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration():
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:
        pytest.fail(f"models changed without a migration:\n{out.getvalue()} (exit {exit_.code})")


@pytest.mark.django_db(transaction=True)
def test_upgrading_a_purged_chain_keeps_it_verifiable():
    """A chain trimmed by an `audit_purge` from before purges were chained gets, at the upgrade,
    the purge entry that `audit_verify` now asks for; its key becomes the head's key."""
    from django.db import connection, transaction
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    from audit import chain

    before = [("audit", "0007_activity_summary")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    entry_model, head_model = (
        old.get_model("audit", "AuditEntry"),
        old.get_model("audit", "ChainHead"),
    )
    head_model.objects.all().delete()
    prev_mac, entries = chain.GENESIS, []
    for n in range(3):
        entry = entry_model(at=timezone.now(), actor_username=f"agent{n}", action="lookup")
        entry.mac = prev_mac = chain.compute_mac(
            {name: getattr(entry, name) for name in chain.CHAINED_FIELDS}, prev_mac=prev_mac
        )
        entry.save()
        entries.append(entry)
    # What the old audit_purge left: the first entry gone, the head remembering it.
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config(%s, 'on', true)", [chain.PURGE_FLAG])
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entries[0].pk])
    head_model.objects.create(
        pk=1,
        last_entry_id=entries[-1].pk,
        last_mac=entries[-1].mac,
        purged_through_id=entries[0].pk,
        purged_through_mac=entries[0].mac,
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    result = chain.verify()
    assert result.ok, result.message
    assert f"Entries up to #{entries[0].pk} were purged" in result.message
    from audit.models import Action, AuditEntry, ChainHead

    adopted = AuditEntry.objects.get(action=Action.AUDIT_PURGED)
    assert f"last={entries[0].pk} last_mac={entries[0].mac}" in adopted.detail
    assert ChainHead.objects.get().key_id == chain.current_key_id()


@pytest.mark.django_db(transaction=True)
def test_the_storage_migration_moves_a_seeded_log_whole():
    """Migration 0019 (#22) rebuilds the audit table on PostgreSQL, partitioned by month: every
    entry is still there with its id and MAC, the chain verifies, and the next entry goes on
    from the same ids. On SQLite the table stays as it is."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from audit import chain, partitions, seeding
    from audit.models import Action, AuditEntry

    before = [("audit", "0016_spans_and_counted_records")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    seeding.seed(rows=3_000, days=120, staff=20, meetings=200, batch_size=1_000, random_seed=22)
    span = chain.append(
        actor_username="agent",
        action=Action.LOOKUP,
        via="refresh",
        calls=3,
        tally={"kind": "span", "outcomes": {"found": 2, "timeout": 1}, "unanswered": 0},
    )
    entries = list(AuditEntry.objects.order_by("id").values_list("id", "mac"))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert list(AuditEntry.objects.order_by("id").values_list("id", "mac")) == entries
    assert AuditEntry.objects.get(pk=span.pk).tally["outcomes"] == {"found": 2, "timeout": 1}
    result = chain.verify()
    assert result.ok, result.message
    assert result.entries_checked == 3_001
    assert chain.append(actor_username="agent", action=Action.SIGN_IN).pk > span.pk
    if connection.vendor == "postgresql":
        assert partitions.is_partitioned()
        # Every month of the seeded 120 days has its own partition: none is left in DEFAULT.
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT}")  # noqa: S608
            assert cursor.fetchone() == (0,)
    else:
        assert not partitions.is_partitioned()
