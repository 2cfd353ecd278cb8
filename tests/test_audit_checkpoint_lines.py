"""Checkpoint lines (audit/chain.py `Checkpoint`) come back from outside the database: the
checkpoint file, or any log lines fed to `audit_verify --checkpoint -`. Whatever a line holds,
reading it gives a checkpoint, nothing, or `BadCheckpoint`; never another error."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from audit import chain

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ("type", "v", "last_id", "last_mac", "entries", "at", "key", "sig")


def read(line: str) -> chain.Checkpoint | str | None:
    try:
        return chain.Checkpoint.from_line(line)
    except chain.BadCheckpoint:
        return "refused"


@given(st.text())
def test_any_text_is_read_or_refused(line):
    result = read(line)

    assert result is None or result == "refused" or isinstance(result, chain.Checkpoint)


@given(st.dictionaries(st.sampled_from(FIELDS), json_values))
def test_any_checkpoint_shaped_document_is_read_or_refused(document):
    document["type"] = chain.Checkpoint.KIND
    line = json.dumps(document)

    assert read(line) == "refused"
    # ... also when a log line carries it as its field.
    assert read(json.dumps({"level": "INFO", chain.Checkpoint.KIND: line})) == "refused"


@given(
    last_id=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
    last_mac=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    entries=st.integers(min_value=0, max_value=2**63 - 1),
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
def test_a_signed_checkpoint_reads_back_as_written(last_id, last_mac, entries, at):
    checkpoint = chain.Checkpoint(last_id=last_id, last_mac=last_mac, entries=entries, at=at)

    line = checkpoint.signed().line()

    assert chain.Checkpoint.from_line(line) == checkpoint.signed()


@given(field=st.sampled_from(["last_id", "last_mac", "entries", "at"]), data=st.data())
def test_changing_any_signed_field_is_refused(field, data):
    checkpoint = chain.Checkpoint(
        last_id=41, last_mac="a" * 64, entries=41, at=datetime(2026, 11, 30, tzinfo=UTC)
    ).signed()
    document = json.loads(checkpoint.line())
    changed = {
        "last_id": data.draw(st.integers(min_value=1).filter(lambda n: n != 41)),
        "last_mac": "b" * 64,
        "entries": data.draw(st.integers(min_value=0).filter(lambda n: n != 41)),
        "at": "2026-11-30T00:00:01.000000Z",
    }[field]

    assert read(json.dumps({**document, field: changed})) == "refused"


@given(
    depth=st.integers(min_value=0, max_value=120_000),
    opener=st.sampled_from(["[", '{"a":', '{"type":"audit_checkpoint","x":']),
    in_a_log_line=st.booleans(),
)
@example(depth=100_000, opener="[", in_a_log_line=False)
@example(depth=100_000, opener="[", in_a_log_line=True)
def test_json_nested_to_any_depth_is_read_or_refused(depth, opener, in_a_log_line):
    line = opener * depth
    if in_a_log_line:
        line = json.dumps({"level": "INFO", chain.Checkpoint.KIND: line})

    assert read(line) in (None, "refused")


@given(st.lists(st.binary(max_size=40) | st.text(max_size=40), max_size=6))
@example([b"\xff\xfe"])
@example(["\x00"])
def test_any_lines_of_bytes_or_text_give_checkpoints_or_are_refused(lines):
    try:
        found = chain.read_checkpoints(lines, source="a test")
    except chain.BadCheckpoint:
        return
    assert all(isinstance(checkpoint, chain.Checkpoint) for checkpoint in found)
