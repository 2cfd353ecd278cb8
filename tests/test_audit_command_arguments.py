"""The audit commands' counts (audit/management/arguments.py): a bad `--batch-size`, `--rows`,
`--staff`, `--meetings`, `--days` or `--older-than` is refused with a sentence before anything
runs, never a walk that never ends or a traceback; and `audit_seed` keeps out of a production log.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import example, given
from hypothesis import strategies as st

from audit import chain, seeding
from audit.management.arguments import IN_SQL, batch_size, count
from audit.models import AuditEntry, ChainVerification

MOST = 1_000


def _expected(text: str, most: int | None) -> int | None:
    """What a count of at most `most` takes `text` for: int()'s reading, when from 1 to `most`."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if number >= 1 and (most is None or number <= most) else None


@given(number=st.integers(min_value=-(2**70), max_value=2**70), most=st.sampled_from([MOST, None]))
@example(number=0, most=None)
@example(number=1, most=MOST)
@example(number=MOST, most=MOST)
@example(number=MOST + 1, most=MOST)
def test_a_count_takes_the_whole_numbers_in_its_range_and_only_those(number, most):
    parse = count("entry", "entries", most=most)
    if number >= 1 and (most is None or number <= most):
        assert parse(str(number)) == number
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"^at (least 1 entry|most 1,000 )"):
            parse(str(number))


@given(text=st.text(max_size=60) | st.from_regex(r"\A\s*[+-]?[0-9_]{1,30}\s*\Z"))
@example(text="9" * 5000)  # more digits than int() reads: a ValueError, not a number
@example(text="1.5")
@example(text="")
@example(text="0x10")
def test_a_count_refuses_any_other_text_with_a_sentence(text):
    parse = count("day", "days", most=MOST)
    expected = _expected(text, MOST)
    if expected is None:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            parse(text)
        # The text quoted, its first 40 characters when longer: not repeated whole.
        assert len(str(refused.value)) < 60 + len(repr(text[:41]))
    else:
        assert parse(text) == expected


def test_a_batch_size_is_what_sql_carries():
    assert batch_size("1") == 1
    assert batch_size(str(IN_SQL)) == IN_SQL
    with pytest.raises(argparse.ArgumentTypeError, match="at most 9,223,372,036,854,775,806"):
        batch_size(str(IN_SQL + 1))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: at least 1 entry, not '0'"),
        (["--batch-size", "-3"], "argument --batch-size: at least 1 entry, not '-3'"),
        (["--batch-size", str(10**20)], "argument --batch-size: at most 9,223,372,036,854,775"),
        (["--batch-size", "many"], "argument --batch-size: a whole number of entries is expected"),
    ],
)
def test_audit_verify_refuses_a_batch_size_before_walking(audit_entry, args, message):
    # --batch-size 0 walked forever, -3 ended in a traceback, 10**20 in a database error.
    audit_entry()
    with (
        mock.patch.object(chain, "verify", side_effect=AssertionError("walked")),
        pytest.raises(CommandError, match=message),
    ):
        call_command("audit_verify", *args, stdout=StringIO(), stderr=StringIO())
    assert not ChainVerification.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("size", [0, -1])
def test_the_walk_refuses_a_batch_size_that_would_never_move_it_on(audit_entry, size):
    audit_entry()
    with pytest.raises(ValueError, match=f"at least 1 entry per batch, not {size}"):
        chain.verify(batch_size=size)


@pytest.mark.django_db
def test_the_walk_takes_one_entry_a_batch(audit_entry):
    for _ in range(3):
        audit_entry()
    assert chain.verify(batch_size=1).entries_checked == 3
    assert call_command("audit_verify", "--batch-size", "1", stdout=StringIO()) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("audit_rollup", ["--batch-size", "0"], "--batch-size: at least 1 entry"),
        ("audit_rollup", ["--batch-size", str(10**20)], "--batch-size: at most "),
        ("audit_purge", ["--older-than", "400", "--batch-size", "0"], "at least 1 entry"),
        ("audit_purge", ["--older-than", "400", "--batch-size", str(10**20)], "at most "),
        ("audit_purge", ["--older-than", "-2"], "--older-than: at least 1 day, not '-2'"),
        ("audit_purge", ["--older-than", "soon"], "a whole number of days is expected"),
    ],
)
def test_the_other_commands_refuse_a_bad_count_before_doing_anything(
    audit_entry, command, args, message
):
    old = audit_entry(at=datetime.now(UTC) - timedelta(days=500))
    with pytest.raises(CommandError, match=message):
        call_command(command, *args, stdout=StringIO())
    assert list(AuditEntry.objects.all()) == [old]  # no purge entry, nothing deleted


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "--rows: at least 1 entry, not '0'"),
        (["--rows", "5", "--staff", "0"], "--staff: at least 1 staff name, not '0'"),
        (["--rows", "5", "--meetings", "0"], "--meetings: at least 1 meeting, not '0'"),
        (["--rows", "5", "--days", "-1"], "--days: at least 1 day, not '-1'"),
        (["--rows", "5", "--days", "0"], "--days: at least 1 day, not '0'"),
        (["--rows", "5", "--days", "3654"], "--days: at most 3,653 days, not '3654'"),
        (["--rows", "5", "--meetings", "10000001"], "--meetings: at most 10,000,000 meetings"),
        (["--rows", "5", "--staff", "1000001"], "--staff: at most 1,000,000 staff names"),
        (["--rows", "5", "--batch-size", "-1"], "--batch-size: at least 1 entry"),
    ],
)
def test_audit_seed_refuses_amounts_it_cannot_make_before_writing(args, message):
    # --staff 0 and --meetings 0 ended in an IndexError, --days -1 dated entries in the future.
    with pytest.raises(CommandError, match=message):
        call_command("audit_seed", *args, "--bench-database", stdout=StringIO())
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "amounts",
    [
        {"rows": 0},
        {"staff": 0},
        {"meetings": -1},
        {"batch_size": 0},
        {"days": -1},
        {"days": 0},
        {"days": float("nan")},
        {"staff": seeding.MOST_STAFF + 1},
    ],
)
def test_seeding_refuses_them_too(amounts):
    with pytest.raises(seeding.CannotSeed, match=f"^{next(iter(amounts))} must be "):
        seeding.seed(**{"rows": 5, "staff": 2, "meetings": 2, **amounts})
    if "rows" not in amounts:  # call_command passes a required option through argparse
        # Options given to call_command by name skip argparse: the command says so itself.
        with pytest.raises(CommandError, match="Nothing seeded: "):
            call_command(
                "audit_seed", "--rows", "5", "--bench-database", stdout=StringIO(), **amounts
            )
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_audit_seed_keeps_out_of_a_production_log(settings, audit_entry):
    # pytest-django runs the tests with DEBUG off: production mode, as on the console's hosts.
    assert not settings.DEBUG
    real = audit_entry(username="alice")

    with pytest.raises(CommandError, match=r"production mode \(DEBUG off\).* --bench-database"):
        call_command("audit_seed", "--rows", "5", stdout=StringIO())

    assert list(AuditEntry.objects.all()) == [real]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("debug", "args"), [(True, []), (False, ["--bench-database"])], ids=["debug", "bench"]
)
def test_audit_seed_seeds_with_debug_on_or_a_bench_database(settings, debug, args):
    settings.DEBUG = debug

    call_command(
        "audit_seed", "--rows", "6", "--staff", "1", "--meetings", "1", "--days", "1", *args,
        stdout=StringIO(),
    )  # fmt: skip

    stamps = list(AuditEntry.objects.values_list("at", flat=True))
    assert len(stamps) == 6
    assert datetime.now(UTC) - timedelta(days=1, minutes=1) < min(stamps)
    assert max(stamps) <= datetime.now(UTC)
    assert not AuditEntry.objects.exclude(
        actor_username__in=[f"{seeding.SEED_PREFIX}0001", "admin", "root", "SEED-AGENT-0001"]
    ).exists()
    assert chain.verify().ok
