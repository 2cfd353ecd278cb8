"""Which of the console's secrets are missing or the public demo values.

Pure functions of the values, so that settings.py can refuse them while it loads (with DEBUG off)
and `check --deploy`, gunicorn.conf.py and /readyz can report the same problems afterwards."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet

# Demo values: fine for `make demo` and the tests (DEBUG on), refused when settings load with
# DEBUG off, so that no WSGI server can serve production with them.
DEMO_SECRET_KEY = "demo-insecure-secret-key-do-not-use-in-production"
DEMO_TOKEN_ENCRYPTION_KEY = "ZGVtby1pbnNlY3VyZS1mZXJuZXQta2V5LTMyYnl0ZXM="
DEMO_AUDIT_CHAIN_KEY = "demo-insecure-audit-chain-key-do-not-use-in-production"

_KEY_HINT = {
    "SECRET_KEY": "Set SECRET_KEY to a long random value, e.g. python -c 'import secrets; "
    "print(secrets.token_urlsafe(50))'.",
    "TOKEN_ENCRYPTION_KEYS": "Set TOKEN_ENCRYPTION_KEYS to a Fernet key: python -c 'from "
    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'.",
    "AUDIT_CHAIN_KEY": "Set AUDIT_CHAIN_KEY to a long random value, e.g. python -c 'import "
    "secrets; print(secrets.token_urlsafe(48))'.",
}


@dataclass(frozen=True, slots=True)
class SecretProblem:
    variable: str
    message: str

    @property
    def hint(self) -> str:
        return _KEY_HINT[self.variable]


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode())
    except (ValueError, binascii.Error):
        return False
    return True


def find_secret_problems(
    *,
    secret_key: str,
    secret_key_fallbacks: Sequence[str],
    token_encryption_keys: Sequence[str],
    audit_chain_keys: Sequence[str],
) -> list[SecretProblem]:
    """Every secret that is missing or is the public demo value. Names variables, never values."""
    problems = []
    if not secret_key or secret_key == DEMO_SECRET_KEY:
        problems.append(SecretProblem("SECRET_KEY", "SECRET_KEY is missing or is the demo key."))
    elif DEMO_SECRET_KEY in secret_key_fallbacks:
        problems.append(
            SecretProblem("SECRET_KEY", "SECRET_KEY_FALLBACKS contains the demo key: remove it.")
        )

    keys = [key for key in token_encryption_keys if key]
    if not keys:
        problems.append(SecretProblem("TOKEN_ENCRYPTION_KEYS", "TOKEN_ENCRYPTION_KEYS is missing."))
    elif DEMO_TOKEN_ENCRYPTION_KEY in keys:
        problems.append(
            SecretProblem(
                "TOKEN_ENCRYPTION_KEYS",
                "TOKEN_ENCRYPTION_KEYS contains the demo key: tokens encrypted with it are "
                "readable by anyone who has this source code.",
            )
        )
    elif not all(_is_fernet_key(key) for key in keys):
        problems.append(
            SecretProblem(
                "TOKEN_ENCRYPTION_KEYS",
                "TOKEN_ENCRYPTION_KEYS contains something that is not a Fernet key.",
            )
        )

    # The audit chain's keys (audit/chain.py): the current one and any earlier ones.
    chain_keys = [key for key in audit_chain_keys if key]
    if not chain_keys or DEMO_AUDIT_CHAIN_KEY in chain_keys:
        problems.append(
            SecretProblem("AUDIT_CHAIN_KEY", "AUDIT_CHAIN_KEY is missing or is the demo key.")
        )
    return problems


def refusal(problems: Sequence[SecretProblem]) -> str:
    """The one message that names every problem, for a refusal to start."""
    names = ", ".join(dict.fromkeys(problem.variable for problem in problems))
    details = " ".join(f"{problem.message} {problem.hint}" for problem in problems)
    return f"The console will not serve with a missing or demo secret: {names}. {details}"
