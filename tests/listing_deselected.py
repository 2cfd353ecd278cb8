"""A pytest plugin for tests that run pytest (`-p tests.listing_deselected`, with `-s`): each test
left out by a `pytest_deselected` call (an option such as `--database-tests-only`, or `-m`)
is printed as `deselected <node id>`, so that one collection says what was kept and what was
left out."""

from __future__ import annotations

import pytest


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        print(f"deselected {item.nodeid}")
