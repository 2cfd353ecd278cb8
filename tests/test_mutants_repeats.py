"""audit/repeats.py behaviour that `make mutants` found no test pinning down (docs/testing.md,
"Mutation testing")."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from audit import chain, repeats
from audit.models import AuditEntry, RepeatCount
from tests.test_audit_repeats import NEXT_MINUTE, pinned, refuse

pytestmark = pytest.mark.django_db


@pinned
def test_a_minute_sealed_meanwhile_by_another_sealer_does_not_stop_the_rest(monkeypatch):
    """`audit_seal` and the audit pages seal at once: a row another sealer took while this one
    was sealing the rows before it is passed over, and the rows after it are still sealed."""
    for source in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(3):  # the minute's first is its own entry, two are counted
            refuse(source)
    rows = list(RepeatCount.objects.order_by("pk").values_list("pk", flat=True))
    assert len(rows) == 3
    seal = repeats._seal

    def sealed_and_another_meanwhile(row):
        seal(row)
        if row.pk == rows[0]:  # meanwhile, another sealer seals the next row
            seal(RepeatCount.objects.get(pk=rows[1]))

    monkeypatch.setattr(repeats, "_seal", sealed_and_another_meanwhile)

    assert repeats.seal_past(now=NEXT_MINUTE) == 2  # the third was this one's own

    assert not RepeatCount.objects.exists()
    counted = AuditEntry.objects.filter(repeats__isnull=False)
    assert sorted(e.tally["source"] for e in counted) == [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
    ]
    assert repeats.requests_on_record() == 9
    assert chain.verify().ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only (row locks)")
@pytest.mark.django_db(transaction=True)
@pinned
def test_a_row_another_sealer_is_sealing_is_passed_over_not_waited_for():
    """Two sealers at once (`audit_seal` on two hosts, or beside the audit pages): a row the
    other has locked is passed over (`skip_locked`), not waited for, so this one seals the rest
    and returns while the other still holds its row; that row is sealed once, afterwards."""
    for source in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(3):  # the minute's first is its own entry, two are counted
            refuse(source)
    rows = list(RepeatCount.objects.order_by("pk").values_list("pk", flat=True))
    locked, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    sealed: list[int] = []

    def hold_a_row() -> None:
        try:
            with transaction.atomic():
                RepeatCount.objects.select_for_update().get(pk=rows[1])
                locked.set()
                release.wait(30)
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    def seal() -> None:
        try:
            sealed.append(repeats.seal_past(now=NEXT_MINUTE))
        finally:
            connection.close()

    holder = threading.Thread(target=hold_a_row)
    holder.start()
    assert locked.wait(30)
    sealer = threading.Thread(target=seal)
    sealer.start()
    sealer.join(20)  # returns at once; waiting for the row's lock, it would wait for the holder
    returned_while_held = not sealer.is_alive()
    release.set()
    holder.join(30)
    sealer.join(30)

    assert failures == []
    assert returned_while_held
    assert sealed == [2]
    assert list(RepeatCount.objects.values_list("pk", flat=True)) == [rows[1]]
    assert repeats.seal_past(now=NEXT_MINUTE) == 1  # the row the other had taken
    assert repeats.requests_on_record() == 9
    assert chain.verify().ok
