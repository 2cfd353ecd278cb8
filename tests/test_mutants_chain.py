"""The audit chain's canonical encoding, byte for byte (docs/testing.md, "Mutation testing").

Every other chain test computes MACs with the same `canonical_bytes` that wrote them, so a change
to the encoding that is applied alike on both sides (another separator, a key renamed, the
version left out) passes them all. It must not pass: entries written by an earlier release
have to verify after an upgrade, and a witness outside the console holds MACs computed over
exactly these bytes. So the documents are written out here by hand."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime, timedelta, timezone

from audit import chain

# 10:00:00.123456 fourteen hours east of UTC: the timestamp is written in UTC, with microseconds.
AT = datetime(2027, 3, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=14)))
VALUES = {
    "at": AT,
    "actor_username": "agent",
    "action": "lookup",
    "via": "page",
    "deployment": "dev",
    "meeting_id": "81234567890",
    "outcome": "found",
    "http_status": 200,
    "latency_ms": 12,
    "connvo_request_id": "req-1",
    "client_ip": None,
    "user_agent": "Firefox",
    "detail": "é ✓",  # written as UTF-8, not as \u escapes
    "request_id": "r1",
}
V1 = (
    '{"action":"lookup","actor_username":"agent","at":"2027-02-28T20:00:00.123456Z",'
    '"client_ip":null,"connvo_request_id":"req-1","deployment":"dev","detail":"é ✓",'
    '"http_status":200,"latency_ms":12,"meeting_id":"81234567890","outcome":"found",'
    '"prev":"PREV","request_id":"r1","user_agent":"Firefox","v":1,"via":"page"}'
)


def v2(calls: str, repeats: str, tally: str) -> str:
    return (
        '{"action":"lookup","actor_username":"agent","at":"2027-02-28T20:00:00.123456Z",'
        f'"calls":{calls},"client_ip":null,"connvo_request_id":"req-1","deployment":"dev",'
        '"detail":"é ✓","http_status":200,"latency_ms":12,"meeting_id":"81234567890",'
        f'"outcome":"found","prev":"PREV","repeats":{repeats},"request_id":"r1",'
        f'"tally":{tally},"user_agent":"Firefox","v":2,"via":"page"}}'
    )


def test_an_entry_without_counted_fields_is_encoded_as_version_1():
    assert chain.canonical_bytes(VALUES, prev_mac="PREV") == V1.encode("utf-8")
    # Counted fields present but all None (every entry from before spans, read back) alike.
    none = {**VALUES, "calls": None, "repeats": None, "tally": None}
    assert chain.canonical_bytes(none, prev_mac="PREV") == V1.encode("utf-8")


def test_an_entry_with_any_counted_field_is_encoded_as_version_2_with_all_three():
    calls_only = {**VALUES, "calls": 0}  # zero calls is a value, not an absence
    assert chain.canonical_bytes(calls_only, prev_mac="PREV") == v2("0", "null", "null").encode()

    tally = {"kind": "span", "outcomes": {"found": 2}, "final": True}
    counted = {**VALUES, "calls": None, "repeats": 3, "tally": tally}
    assert chain.canonical_bytes(counted, prev_mac="PREV") == v2(
        "null", "3", '{"final":true,"kind":"span","outcomes":{"found":2}}'
    ).encode("utf-8")


def test_the_mac_is_hmac_sha256_of_the_document_under_the_current_key(settings):
    settings.AUDIT_CHAIN_KEYS = ["the current key", "an older key"]
    document = V1.replace("PREV", "ab" * 32).encode("utf-8")

    assert chain.compute_mac(VALUES, prev_mac="ab" * 32) == (
        hmac.new(b"the current key", document, hashlib.sha256).hexdigest()
    )
    assert chain.compute_mac(VALUES, prev_mac="ab" * 32, key=b"an older key") == (
        hmac.new(b"an older key", document, hashlib.sha256).hexdigest()
    )


def test_a_key_is_named_by_the_same_id_in_every_release():
    """Key ids are stored: in the chain head, in every checkpoint, and in the chained entry of
    each key rotation. An id computed another way after an upgrade would name no key of
    AUDIT_CHAIN_KEY, and every rotated chain and checkpoint would fail to verify."""
    assert chain.key_id("the current key") == "e7005b49bb3c1215"


def test_the_encoding_is_in_utc_whatever_the_local_zone(monkeypatch):
    """The machines that ran the suite so far keep UTC as their local zone, where local time and
    UTC are the same; a host in another zone must write (and verify) the same bytes."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert chain.canonical_bytes(VALUES, prev_mac="PREV") == V1.encode("utf-8")
    finally:
        monkeypatch.undo()
        time.tzset()
