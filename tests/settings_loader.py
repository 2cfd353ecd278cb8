"""connvo_admin/settings.py run afresh in this process under an environment of the test's choosing:
what a server's start reads, at the cost of running one module (no interpreter to start)."""

from __future__ import annotations

import os
import runpy
import secrets
from pathlib import Path
from typing import Any
from unittest import mock

from cryptography.fernet import Fernet

SETTINGS = Path(__file__).resolve().parents[1] / "connvo_admin" / "settings.py"


def production_environment(**overrides: str) -> dict[str, str]:
    """The least that production mode (DEBUG off) loads with: fresh secrets, a host name, Redis."""
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "AUDIT_CHAIN_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "console.intranet.example",
        "CACHE_URL": "redis://127.0.0.1:6379/5",
    } | overrides


def load_settings(environment: dict[str, str]) -> dict[str, Any]:
    """The settings module's names after running it with exactly `environment` (nothing of this
    process's own environment), which is restored afterwards."""
    with mock.patch.dict(os.environ, environment, clear=True):
        return runpy.run_path(str(SETTINGS))
