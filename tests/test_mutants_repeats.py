"""audit/repeats.py behaviour that `make mutants` found no test pinning down (docs/testing.md,
"Mutation testing")."""

from __future__ import annotations

import pytest

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
