"""`python -m fakeconnvo`: serve a fake Connvo deployment (and its fake WorkOS) until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from types import FrameType

from fakeconnvo.server import GET_MEETING_PATH, FakeConnvo
from fakeconnvo.workos import AUTHENTICATE_PATH, AUTHORIZE_PATH, DEFAULT_ACCESS_TOKEN_TTL


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fakeconnvo", description="Serve a fake Connvo (Convex) deployment."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the users and meetings")
    parser.add_argument(
        "--live-metrics",
        action="store_true",
        help="let active meetings' participant and session counts drift over time",
    )
    parser.add_argument(
        "--token-ttl", type=int, default=8 * 3600, help="lifetime of the printed token, seconds"
    )
    parser.add_argument(
        "--access-token-ttl",
        type=float,
        default=DEFAULT_ACCESS_TOKEN_TTL,
        help="lifetime of the access tokens the fake WorkOS issues, seconds (default 300)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve(fake: FakeConnvo, args: argparse.Namespace) -> int:
    try:
        fake.start(host=args.host, port=args.port)
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    print(f"Fake Connvo deployment listening on {fake.url}")
    print(f"  endpoint: POST {fake.url}{GET_MEETING_PATH}")
    print(f"  issuer:   {fake.issuer}")
    print("  users:")
    for label, user in fake.users.items():
        print(f"    {label:<12} sub={user.sub}  id={user.id}  {user.email}")
    print(f"    {'(no user)':<12} sub={fake.unprovisioned_sub}")
    print("  meetings:")
    for label, meeting_id in fake.meeting_labels.items():
        print(f"    {label:<12} {meeting_id}  {fake.meetings[meeting_id].fields['title']}")
    print(f"    {'(unknown)':<12} {fake.unknown_meeting_id()}")
    print(f"  agent token ({args.token_ttl} s):")
    print(f"    {fake.token_for('agent', expires_in=args.token_ttl)}")
    print(f"  sync:     {fake.sync_url} (Convex's WebSocket; subscriptions get pushed changes)")
    print(f"  control: {fake.url}/_fake/world, /_fake/tokens, /_fake/calls, /_fake/misbehave,")
    print("           /_fake/sync")
    login = fake.workos_login_user
    print("WorkOS (AuthKit) on the same server; configure the console with:")
    print(f"    WORKOS_CLIENT_ID={fake.workos_client_id}")
    print(f"    WORKOS_API_KEY={fake.workos_api_key}")
    print(f"    WORKOS_BASE_URL={fake.url}")
    print(f"  authorize:    GET  {fake.url}{AUTHORIZE_PATH}")
    print(f"                (provider=authkit; signs in at once as {login.label}, {login.email})")
    print(f"  authenticate: POST {fake.url}{AUTHENTICATE_PATH}")
    print(f"  access tokens live {fake.access_token_ttl:g} s; refresh tokens are single-use")
    print(f"  control: {fake.url}/_fake/workos, /_fake/workos/login, .../sessions,")
    print("           .../refresh_count, .../users/<user>/revoke, .../calls, .../config")
    sys.stdout.flush()
    while True:
        time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    # SIGTERM (a demo script stopping us) exits as cleanly as Ctrl-C. SIGINT is set explicitly
    # because a shell starting us in the background hands it down ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    fake = FakeConnvo(
        seed=args.seed, live_metrics=args.live_metrics, access_token_ttl=args.access_token_ttl
    )
    try:
        return _serve(fake, args)
    except KeyboardInterrupt:
        return 0
    finally:
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
