"""The arrows between the apps point one way (README, "How the code is arranged"): `meetings/`
uses `accounts/` and `audit/`, `accounts/` records through `audit/`; nothing in `audit/`,
`accounts/` or `connvo_admin/` imports `meetings/`, and nothing in `audit/` imports `accounts/`.
Two imports against them once slipped in unseen (an account's deletion forgetting its Connvo
credentials from `accounts/admin.py`; the sign-in's CSRF refusal from `audit/views.py`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The ASGI entry point composes the push server from the app's URLs, at start.
ENTRY_POINTS = {"connvo_admin/asgi.py"}
FORBIDDEN = {
    "audit": ("meetings", "accounts"),
    "accounts": ("meetings",),
    "connvo_admin": ("meetings", "accounts", "audit"),
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_the_wrong_way(package):
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / package).rglob("*.py")
        if str(path.relative_to(ROOT)) not in ENTRY_POINTS
        for name in imported(path)
        if name.split(".")[0] in FORBIDDEN[package]
    }

    assert not wrong, sorted(wrong)
