"""What sealing span parts writes: entries appended, write-ahead log and audit tables' growth per
part, for parts whose calls all ended one way and for parts that ended in several (a few calls of
another outcome among many found: a meeting that timed out now and then).

    .venv/bin/python bench/seal_parts.py --parts 400 --calls 60 --mixed 0.25

Runs on a PostgreSQL database of its own on 127.0.0.1:5432 (created, migrated and dropped), in
production mode with secrets of its own. Counts and answers the calls through `audit.spans` (as the
refresh does, without HTTP), then seals every part at once and measures only the seal. Prints
figures; asserts nothing about them."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
POSTGRES = "postgres://postgres@127.0.0.1:5432"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("AUDIT_CHAIN_KEY", secrets.token_urlsafe(48))
os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    import psycopg
    from cryptography.fernet import Fernet

    os.environ.setdefault("TOKEN_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=400, help="span parts sealed (400)")
    parser.add_argument("--calls", type=int, default=60, help="calls in each part (60)")
    parser.add_argument(
        "--mixed", type=float, default=0.25, help="share of parts with one call timed out (0.25)"
    )
    args = parser.parse_args()
    database = f"bench_seal_{secrets.token_hex(4)}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    os.environ["DATABASE_URL"] = f"{POSTGRES}/{database}"
    try:
        _measure(args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _measure(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from audit_volume import AUDIT_RELATIONS
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from profile_refresh import _wal_position

    from audit import spans
    from audit.models import AuditEntry, Via
    from audit.services import Origin

    call_command("migrate", verbosity=0)
    agent = get_user_model().objects.create_user("bench-agent")
    origin = Origin(user=agent, username=agent.username, client_ip="192.0.2.7")
    mixed = round(args.parts * args.mixed)
    keys = []
    for part in range(args.parts):
        key = f"{part:022d}"
        meeting = ("prod", f"m{part:05d}")
        for call in range(args.calls):
            counted = spans.count_calls(
                key=key, origin=origin, via=Via.REFRESH, meetings=[meeting], quiet_after=30
            )
            outcome = "timeout" if part < mixed and call == args.calls - 1 else "found"
            spans.record_answers(
                counted,
                [spans.Answered(deployment=meeting[0], meeting_id=meeting[1], outcome=outcome)],
            )
        keys.append(key)

    def sizes() -> int:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
            cursor.execute("VACUUM ANALYZE")
            cursor.execute(AUDIT_RELATIONS)
            return sum(size for _, kind, size in cursor.fetchall() if kind == "r")

    before_bytes, before_wal = sizes(), _wal_position()
    before_entries = AuditEntry.objects.count()
    sealed = spans.seal(list(spans.Span.objects.values_list("id", flat=True)), final=False)
    wal = _wal_position() - before_wal
    grown = sizes() - before_bytes
    entries = AuditEntry.objects.count() - before_entries
    assert entries == len(sealed)
    print(
        f"{args.parts} parts of {args.calls} calls, {mixed} of them with one call timed out "
        f"(PostgreSQL {connection.pg_version // 10000})"
    )
    print(f"  entries appended:            {entries:>8,}  ({entries / args.parts:.2f} a part)")
    print(f"  write-ahead log of the seal: {wal:>8,} B ({wal / args.parts:,.0f} B a part)")
    print(
        f"  audit tables grew by:        {grown:>8,} B ({grown / args.parts:,.0f} B a part, "
        f"{grown / max(entries, 1):,.0f} B an entry; heap and indexes, after VACUUM)"
    )


if __name__ == "__main__":
    main()
