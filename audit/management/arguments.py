"""The argument types of the audit commands' counts (`--batch-size`, `--rows`, `--days`, …): a
whole number from 1 up, refused with a sentence before the command does anything, never a
traceback or a walk that never ends."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# The most a count that ends up in SQL may be: LIMIT and OFFSET take a 64-bit signed integer, and
# the chain's walk asks for one entry more than its batch.
IN_SQL = 2**63 - 2


def count(singular: str, plural: str, *, most: int | None = None) -> Callable[[str], int]:
    """An argparse `type=`: the text as a whole number of `plural`, from 1 to `most` (no limit
    when None), else argparse.ArgumentTypeError saying what is expected."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except (TypeError, ValueError):  # more digits than int() reads is a ValueError too
            raise argparse.ArgumentTypeError(
                f"a whole number of {plural} is expected, not {_shown(text)}"
            ) from None
        if number < 1:
            raise argparse.ArgumentTypeError(f"at least 1 {singular}, not {_shown(text)}")
        if most is not None and number > most:
            raise argparse.ArgumentTypeError(f"at most {most:,} {plural}, not {_shown(text)}")
        return number

    parse.__name__ = f"count of {plural}"  # what argparse would name it
    return parse


def _shown(text: object) -> str:
    """The value as an error quotes it: a five-thousand-digit count is not worth repeating."""
    text = str(text)
    return repr(text if len(text) <= 40 else text[:40] + "…")


# What a batch size may be, for every audit command that takes one (entries read, written,
# counted or deleted per query or transaction): at least one entry, and what SQL can carry.
batch_size = count("entry", "entries", most=IN_SQL)
