"""`python -m fakeconnvo.demo` (what `make demo` runs): the console on the embedded default, against
fake Connvo deployments on loopback.

Starts a fake Connvo for every configured deployment whose URL is on this machine (production-
marked ones redact errors as Convex does in production; ones with WorkOS settings also play
WorkOS AuthKit), creates the demo logins (an agent with its Connvo account connected, or a token
saved, on each of them; an auditor; an admin); verifies the audit chain at start and every few
minutes; prints every seeded meeting and the commands that make the fake fail; and serves the
console, push streams included, from uvicorn until Ctrl-C.

It lives with the fakes so that nothing in the console imports a fake; the fake deployments
themselves (the rest of this package) still share no code with the console.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from urllib.parse import parse_qs, urlsplit

import django
import requests

from fakeconnvo.server import FakeConnvo

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DemoError(Exception):
    pass


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fakeconnvo.demo",
        description=(
            "Run the console against fake Connvo deployments with seeded meetings and a demo login."
        ),
    )
    parser.add_argument("--addrport", default="127.0.0.1:8000")
    parser.add_argument("--username", default="demo")
    parser.add_argument("--password", default="demo")
    parser.add_argument(
        "--access-token-ttl",
        type=int,
        default=120,
        help="lifetime of the fake WorkOS access tokens, seconds (real ones: about 300)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C (SIGINT) stops the demo however it was started: a shell starting it in the
    # background hands it SIGINT ignored, and then nothing but SIGKILL would.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = _parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connvo_admin.settings")
    # One process serves the whole demo: it records pushed answers itself, with no push relay
    # beside it (meetings/relay.py; a server runs `manage.py push_relay`, docs/deploy.md).
    os.environ.setdefault("CONNVO_PUSH_RELAY", "")
    django.setup()
    try:
        _run(args)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


# What each failure switch of the fake makes the console show: (label, switch as JSON). Each is
# printed with the command that turns it on for the next lookup (or two), so every page state of
# the console is a command and a click away.
FAILURES = [
    ("Connvo is slow (times out)", {"kind": "slow", "delay": 12, "times": 2}),
    ("Connvo trickles its answer (times out)", {"kind": "trickle", "delay": 0.2, "times": 2}),
    ("Connvo is overloaded (503, then recovers)", {"kind": "overloaded", "times": 3}),
    ("Connvo limits lookups (429)", {"kind": "status", "status": 429, "retry_after": 30}),
    ("Connvo fails (500)", {"kind": "status", "status": 500, "times": 1}),
    ("Connvo answers garbage", {"kind": "garbage", "times": 1}),
    ("A proxy error page", {"kind": "proxy_error", "times": 1}),
    ("Schema drift", {"kind": "schema_drift", "field": "state", "value": "archived"}),
    ("Connection reset", {"kind": "reset", "times": 2}),
]
DEMO_LOGINS = [
    # (username, group or None for a superuser, what it is for)
    ("auditor", "Auditor", "the audit log"),
    ("admin", None, "Django's admin at /admin/"),
]


def _run(args: argparse.Namespace) -> None:
    # The console, imported once Django is set up.
    from django.conf import settings
    from django.core.management import call_command
    from django.core.management.color import color_style

    from meetings import pasted_tokens, workos_auth
    from meetings.deployments import deployments

    fakes = _start_fakes(deployments().values(), args.access_token_ttl)
    try:
        user = _demo_login(args.username, args.password, group="Support")
        for username, group, _ in DEMO_LOGINS:
            _demo_login(username, username, group=group)
        host, _, port = args.addrport.rpartition(":")
        base = f"http://{host}:{port}"
        for name, fake in fakes.items():
            if workos_auth.is_workos_deployment(name):
                _connect(user, name, callback=f"{base}/connvo/callback/")
            else:
                # A week: well past the Tokens page's expiry warning, so the demo starts calm.
                pasted_tokens.store_token(
                    user=user,
                    deployment_name=name,
                    raw_token=fake.token_for("agent", expires_in=7 * 24 * 3600),
                )
        # The audit pages then open with "Chain last verified … OK", not "never verified", and
        # stay verified while the demo runs.
        call_command("audit_verify", verbosity=0, stdout=_Discard(), stderr=_Discard())
        witness_the_chain(settings.AUDIT_CHECKPOINT_INTERVAL, threading.Event())

        style = color_style()
        print(style.SUCCESS("\nConnvo Support Console demo"))
        print(f"  Console:  {base}/")
        print(f"  Sign in:  {args.username} / {args.password}   (support agent: look up meetings)")
        for username, _, what in DEMO_LOGINS:
            print(f"            {username} / {username}   ({what})")
        for name, fake in fakes.items():
            production = " (production: errors redacted)" if name in _production_names() else ""
            print(style.HTTP_INFO(f"\n  Meetings on {name}{production}, fake Connvo at {fake.url}"))
            for label, meeting_id in fake.meeting_labels.items():
                print(f"    {label:<11} {base}/meetings/{name}/{meeting_id}/")
            print(f"    {'not found':<11} {base}/meetings/{name}/{fake.unknown_meeting_id()}/")
        default = settings.CONNVO_DEFAULT_DEPLOYMENT
        sample = fakes.get(default) or next(iter(fakes.values()))
        print(style.HTTP_INFO(f"\n  Make {default} fail (then open or keep open a meeting page):"))
        for label, switch in FAILURES:
            body = json.dumps(switch, separators=(",", ":"))
            print(f"    {label:<42} curl -sd '{body}' {sample.url}/_fake/misbehave")
        print(f"    {'Back to normal':<42} curl -sd '{{}}' {sample.url}/_fake/reset")
        if settings.CONNVO_WORKOS:
            print(
                f"\n  Connvo access tokens last {args.access_token_ttl} s here; leave a meeting "
                "open and watch the console renew them (Tokens page, audit log)."
            )
        if settings.CONNVO_PUSH:
            print("  Open meeting pages are live by push (Connvo's changes show at once).")
        print("  Ctrl-C stops the console and the fake deployments.\n", flush=True)
        serve(host, int(port))
    finally:
        for fake in fakes.values():
            fake.stop()


def serve(host: str, port: int) -> None:
    """The whole console from its ASGI entry under uvicorn, on one port: the pages (each sync view
    in a thread of its own) and the push streams under /live/, which runserver (WSGI) cannot hold
    open. In production nginx splits the two between gunicorn.conf.py's threaded workers and the
    push server (docs/deploy.md)."""
    import uvicorn

    # The console logs every request as a JSON line; uvicorn's access line would repeat it.
    uvicorn.run(
        "connvo_admin.asgi:application",
        host=host.strip("[]"),
        port=port,
        access_log=False,
        lifespan="off",
        log_level="warning",
        # An open push stream would otherwise keep Ctrl-C waiting.
        timeout_graceful_shutdown=1,
    )


def witness_the_chain(interval: float, stop: threading.Event) -> threading.Thread:
    """What production's timers do (docs/deploy.md, "Regular jobs"), every `interval` seconds:
    the daily `audit_verify --since-checkpoint` (which witnesses a signed checkpoint of what it
    verified), falling back to the checkpoint timer's `audit_checkpoint` when it fails. Verified
    this often, the audit pages' chain-health panel stays green however long the demo runs: with
    checkpoints alone it turned amber ten minutes in, once the verification at start no longer
    reached a recent checkpoint (as production's panel is amber between its daily walks)."""

    def run() -> None:
        from django.core.management import call_command
        from django.db import connection

        logger = logging.getLogger(__name__)
        while not stop.wait(interval):
            try:
                try:
                    call_command(
                        "audit_verify", "--since-checkpoint", stdout=_Discard(), stderr=_Discard()
                    )
                except SystemExit:  # a broken chain: the panel turns red and says where
                    logger.warning("demo: the audit chain did not verify")
                    call_command("audit_checkpoint", stdout=_Discard(), stderr=_Discard())
            except Exception:
                logger.warning("demo: no audit checkpoint", exc_info=True)
            finally:
                connection.close()

    thread = threading.Thread(target=run, name="demo-audit-checkpoints", daemon=True)
    thread.start()
    return thread


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _production_names() -> set[str]:
    from django.conf import settings

    return set(settings.CONNVO_PRODUCTION_DEPLOYMENTS)


def _start_fakes(configured, access_token_ttl: int) -> dict[str, FakeConnvo]:
    from django.conf import settings

    fakes: dict[str, FakeConnvo] = {}
    for deployment in configured:
        parts = urlsplit(deployment.url)
        if parts.hostname not in LOOPBACK or not parts.port:
            continue
        workos = settings.CONNVO_WORKOS.get(deployment.name)
        fake = FakeConnvo(
            live_metrics=True,
            access_token_ttl=access_token_ttl,
            **(
                {"workos_client_id": workos["client_id"], "workos_api_key": workos["api_key"]}
                if workos
                else {}
            ),
        )
        if deployment.is_production:
            fake.misbehave("redact")
        fake.start(host=parts.hostname, port=parts.port)
        fakes[deployment.name] = fake
    if not fakes:
        raise DemoError(
            "No deployment in CONNVO_DEPLOYMENTS is on this machine (e.g. "
            "demo=http://127.0.0.1:8765), so there is nothing to fake. `make demo` sets this."
        )
    return fakes


def _demo_login(username: str, password: str, *, group: str | None):
    """A demo login; `group` None makes a superuser (for Django's admin)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user, created = get_user_model().objects.get_or_create(username=username)
    if created or not user.check_password(password):
        user.set_password(password)
    if group is None:
        user.is_staff = user.is_superuser = True
    user.save()
    if group is not None:
        user.groups.add(Group.objects.get(name=group))
    return user


def _connect(user, deployment: str, *, callback: str) -> None:
    """Connect the demo login's Connvo account through the same code path as the Connect button,
    with the fake AuthKit approving the sign-in."""
    from audit.services import Origin
    from meetings import connect

    pending = connect.begin_connect(deployment_name=deployment, redirect_uri=callback)
    approved = requests.get(pending.url, allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(approved.headers["Location"]).query)["code"][0]
    connect.finish_connect(
        user=user,
        deployment_name=deployment,
        code=code,
        code_verifier=pending.code_verifier,
        origin=Origin.for_command(user),
    )


if __name__ == "__main__":
    sys.exit(main())
