"""Text from outside the console (Connvo's answers, what a stranger typed) made fit to keep.

Shared by the Connvo client (meetings/), the audit log (audit/) and the sign-in lockouts
(accounts/): it depends on nothing but the standard library."""

from __future__ import annotations

import re

# What no database can hold: PostgreSQL's text types refuse NUL, and a lone surrogate (JSON from
# Connvo can carry "\udc00") cannot be encoded as UTF-8 for any database, nor for the chain's MAC,
# nor for a page.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    """`value` with each character no database can hold replaced by U+FFFD, the character that
    means "something unreadable was here". One character for one, so cutting to a column cuts
    the same text; and the same entry is stored alike everywhere, which the chain needs. Not an
    escape such as `\\x00`: a stranger can type that text itself, and the two would read alike."""
    return _UNSTORABLE.sub("\ufffd", value)
