"""Convex-shaped document ids: made and checked by the fake deployment, never by the client.

A real Convex id is the base32 text of `varint(table number) + 16 random bytes + 2-byte checksum`,
so it names its table without saying so outside. The fake does the same, which lets it tell a
meetings id from a users id the way `v.id("meetings")` does, while both look alike to the console.
"""

from __future__ import annotations

from typing import Final

# Convex's lowercase base32: digits plus letters without i, l, o and u.
ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
_VALUE_OF: Final = {char: value for value, char in enumerate(ALPHABET)}

# Convex numbers user tables from 10001. Numbers from 128 up take two varint bytes, which makes
# every id exactly 20 bytes = 32 characters (real ids are 31-37 characters long).
TABLE_NUMBERS: Final[dict[str, int]] = {"users": 10001, "meetings": 10004}
_TABLE_NAMES: Final = {number: name for name, number in TABLE_NUMBERS.items()}

_INTERNAL_ID_BYTES: Final = 16
MIN_LENGTH: Final = 31
MAX_LENGTH: Final = 37


def encode_id(table: str, internal_id: bytes) -> str:
    """The Convex id of document `internal_id` (16 bytes) in `table`."""
    if len(internal_id) != _INTERNAL_ID_BYTES:
        raise ValueError(f"internal id must be {_INTERNAL_ID_BYTES} bytes")
    payload = _varint(TABLE_NUMBERS[table]) + internal_id
    return _base32(payload + _fletcher16(payload))


def table_of(text: str) -> str | None:
    """The table a well-formed id belongs to, or None when `text` is not one of our ids."""
    if not MIN_LENGTH <= len(text) <= MAX_LENGTH:
        return None
    raw = _unbase32(text)
    if raw is None or len(raw) < 3:
        return None
    payload, footer = raw[:-2], raw[-2:]
    if _fletcher16(payload) != footer:
        return None
    parsed = _read_varint(payload)
    if parsed is None:
        return None
    table_number, used = parsed
    if len(payload) - used != _INTERNAL_ID_BYTES:
        return None
    return _TABLE_NAMES.get(table_number)


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(data: bytes) -> tuple[int, int] | None:
    number = 0
    for position, byte in enumerate(data[:5]):
        number |= (byte & 0x7F) << (7 * position)
        if not byte & 0x80:
            return number, position + 1
    return None


def _fletcher16(data: bytes) -> bytes:
    low = high = 0
    for byte in data:
        low = (low + byte) % 255
        high = (high + low) % 255
    return bytes((high, low))


def _base32(data: bytes) -> str:
    bits = len(data) * 8
    padding = -bits % 5
    number = int.from_bytes(data, "big") << padding
    count = (bits + padding) // 5
    return "".join(ALPHABET[(number >> (5 * (count - 1 - i))) & 31] for i in range(count))


def _unbase32(text: str) -> bytes | None:
    number = 0
    for char in text:
        value = _VALUE_OF.get(char)
        if value is None:
            return None
        number = number << 5 | value
    bits = 5 * len(text)
    padding = bits % 8
    if number & ((1 << padding) - 1):
        return None  # a canonical encoding leaves the padding bits at zero
    return (number >> padding).to_bytes(bits // 8, "big")
