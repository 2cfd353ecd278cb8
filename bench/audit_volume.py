"""What the audit log costs at the load the console is built for (issue #22), in one run on
PostgreSQL: bytes and chained entries per refresh, per open page-hour and per year; the refresh
beside the bare proxy (wrk); and an unauthenticated flood while agents refresh.

    .venv/bin/python bench/audit_volume.py             # about 3 minutes
    .venv/bin/python bench/audit_volume.py --help      # pages, durations, connections...

Starts what bench/live_load.py starts (its `console_and_proxy`: fakes, a database of its own,
Redis keys of its own, the console and the bare proxy under gunicorn in production mode with
generated secrets), then:

1. opens --pages meeting pages (GET, as a browser does) and reads each page's poller values
   (hx-vals) from its HTML; every refresh sends what the page sends, and takes the new values
   from every 200 fragment;
2. refreshes them for --duration seconds, each page every --page-interval seconds (open loop).
   A real page polls every 10 s: the bench compresses time by 10 / --page-interval, and shortens
   AUDIT_SPAN_SEAL_EVERY (the periodic seal of an open page's span, where the console has one)
   by the same factor, so that seals per refresh are those of real pages;
3. where the console keeps spans (`audit.spans`), seals every open span once, as its page's
   final seal will;
4. measures, before and after each step, the size of every audit table (`pg_total_relation_size`
   of every table whose name starts with `audit_` and all their partitions), raw and after
   `VACUUM ANALYZE`, and the chained entries (`audit_auditentry` rows);
5. a flood from one source address (X-Forwarded-For from the trusted proxy): CSRF refusals (a POST
   without a token) and sign-ins refused by a lockout (POSTs for a locked username), both with wrk
   at full speed for --flood-seconds, while the pages keep refreshing; the pages' refresh p50
   before and during, and the chained entries the source added. With --nginx, the pages and the
   flood go through docs/deploy/'s nginx site over HTTPS instead (the deployment docs/deploy.md
   documents: its per-address limit on forms answers most of the flood itself), the flood from
   127.0.0.1 and the pages from 127.0.0.3;
6. the unchanged refresh beside the bare proxy making the same Connvo call, with wrk: one
   connection (p50) and --connections connections (throughput);
7. runs `audit_seal` (if the console has it) once the flood's minutes are over, and compares the
   Connvo calls the fake received with the calls on record (`audit.spans.calls_on_record()`, or
   the lookup entries where the console has no spans).

A page-hour is projected as: one page opened (its first look) + 360 refreshes + its final seal.
Needs wrk (`apt-get install wrk`), and nginx and openssl for --nginx. Prints figures only;
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live_load import (  # noqa: E402
    Client,
    OpenLoop,
    Server,
    calls_recorded,
    console_and_proxy,
    console_spans,
    open_loop,
    percentile,
    poller_values,
    push_url,
    server_cpu_seconds,
    sign_in,
)
from tests.deploy_templates import NGINX, Nginx, self_signed_certificate  # noqa: E402

# A real page's poll interval (CONNVO_POLL_INTERVAL's default) and the console's default periodic
# seal of a span (AUDIT_SPAN_SEAL_EVERY), which the bench scales with its own interval.
REAL_INTERVAL = 10
REAL_SEAL_EVERY = 600
REFRESHES_PER_HOUR = 3600 // REAL_INTERVAL
# The flood's one source, as the trusted proxy forwards it (TEST-NET-2); through nginx, the
# loopback address wrk connects from, while the pages connect from another one.
FLOOD_SOURCE = "198.51.100.23"
NGINX_FLOOD_SOURCE = "127.0.0.1"
NGINX_PAGES_FROM = "127.0.0.3"
LOCKED_USERNAME = "bench-locked"

# Every audit table and every partition under one (whatever its name).
AUDIT_RELATIONS = r"""
WITH RECURSIVE audit_tables AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
      AND c.relname LIKE 'audit\_%'
  UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN audit_tables t ON i.inhparent = t.oid
)
SELECT c.relname, c.relkind, pg_total_relation_size(c.oid)
FROM audit_tables t JOIN pg_class c ON c.oid = t.oid ORDER BY c.relname
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=100, help="open meeting pages (100)")
    parser.add_argument(
        "--page-interval", type=float, default=1.0, help="seconds between a page's refreshes (1)"
    )
    parser.add_argument("--duration", type=float, default=60, help="refresh phase, seconds (60)")
    parser.add_argument("--agents", type=int, default=20, help="agents the pages belong to (20)")
    parser.add_argument("--flood-seconds", type=float, default=10)
    parser.add_argument(
        "--flood-connections", type=int, default=2, help="wrk connections per kind of flood (2)"
    )
    parser.add_argument(
        "--flood-nice",
        type=int,
        default=0,
        help="run the flood's wrk at this niceness (0): 19 leaves the servers the CPU the "
        "flooding client would take on a machine of its own",
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk throughput runs (16)")
    parser.add_argument("--wrk-seconds", type=float, default=10, help="each throughput run (10)")
    parser.add_argument("--latency-seconds", type=float, default=5, help="each p50 run (5)")
    parser.add_argument(
        "--wrk-rounds", type=int, default=1, help="rounds of proxy then refresh, medians (1)"
    )
    parser.add_argument("--working-days", type=int, default=250, help="a year's (250)")
    parser.add_argument("--workers", default="2", help="GUNICORN_WORKERS (2)")
    parser.add_argument("--threads", default="", help="GUNICORN_THREADS (the conf's)")
    parser.add_argument("--db-prefix", default="bench_audit", help="database name prefix")
    parser.add_argument(
        "--nginx",
        action="store_true",
        help="pages and flood through docs/deploy/'s nginx site (HTTPS), as deployed",
    )
    return parser.parse_args()


# --- what the database holds -------------------------------------------------------------------


@dataclass
class Storage:
    raw: int  # bytes of every audit relation, as written
    vacuumed: int  # the same after VACUUM ANALYZE
    entries: int  # chained entries
    tables: dict[str, int] = field(default_factory=dict)  # after vacuum, per table


def audit_storage() -> Storage:
    """Sizes as written; then sizes once vacuumed: VACUUM ANALYZE of the log (`audit_auditentry`
    and its partitions: append-only), VACUUM FULL of every other audit table (the chain head,
    spans, counts...: updated in place, their growth is mostly dead versions of the same rows,
    which VACUUM makes reusable but does not give back, and a steady state reuses)."""
    from django.db import connection

    from audit.models import AuditEntry

    log = AuditEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(AUDIT_RELATIONS)
        rows = cursor.fetchall()
        raw = sum(size for _, _, size in rows)
        for name, kind, _ in rows:
            if kind == "r":
                full = "" if name.startswith(log) else "FULL "
                cursor.execute(f'VACUUM {full}ANALYZE "{name}"')
        cursor.execute(AUDIT_RELATIONS)
        tables = {name: size for name, _, size in cursor.fetchall()}
    return Storage(raw, sum(tables.values()), AuditEntry.objects.count(), tables)


def seal_open_spans(keys: list[str]) -> int:
    """Seal the pages' open spans once (a part each, as each page's final seal will); how many
    parts. Nothing where the console has no spans."""
    spans = console_spans()
    if not hasattr(spans, "seal"):
        return 0
    from audit.models import Span

    ids = list(Span.objects.filter(key__in=keys).values_list("id", flat=True))
    parts = 0
    for start in range(0, len(ids), 100):
        parts += len(spans.seal(ids[start : start + 100], final=False))
    return parts


def has_audit_seal() -> bool:
    from django.core.management import get_commands

    return "audit_seal" in get_commands()


def _unauthenticated_from(source: str, after_id: int):
    """Chained entries after `after_id` from `source` with no one signed in: what the flood can
    add (through nginx the bench's own refreshes of step 6 come from the same address)."""
    from audit.models import AuditEntry

    return AuditEntry.objects.filter(client_ip=source, id__gt=after_id, actor__isnull=True)


def from_source(source: str, after_id: int) -> tuple[int, int]:
    """Unauthenticated chained entries from `source` after `after_id`, and the requests they
    stand for."""
    from django.db.models import Sum, Value
    from django.db.models.functions import Coalesce

    entries = _unauthenticated_from(source, after_id)
    requests = entries.aggregate(n=Sum(Coalesce("repeats", Value(1))))["n"] or 0
    return entries.count(), requests


def by_minute(source: str, after_id: int) -> Counter:
    """Unauthenticated chained entries from `source` after `after_id`, by the minute each stands
    for: a counted record's minute is its repeats' (it is sealed later, in the minute of whatever
    request or command seals it), any other entry's the minute it was written."""
    minutes: Counter = Counter()
    for at, repeats, tally in _unauthenticated_from(source, after_id).values_list(
        "at", "repeats", "tally"
    ):
        if repeats and isinstance(tally, dict) and tally.get("to"):
            at = datetime.fromisoformat(tally["to"])
        minutes[at.astimezone(UTC).strftime("%H:%M")] += 1
    return minutes


def source_kinds(source: str, after_id: int) -> list[str]:
    """What the chained entries from `source` after `after_id` are: action, detail, repeats."""
    entries = _unauthenticated_from(source, after_id).order_by("id")
    return [
        f"{action} ({detail[:40]}){f' x {repeats:,}' if repeats else ''}"
        for action, detail, repeats in entries.values_list("action", "detail", "repeats")
    ]


def last_entry_id() -> int:
    from audit.models import AuditEntry

    return AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


# --- where the pages and the flood come in ------------------------------------------------------


@dataclass
class Entrance:
    """Gunicorn itself (the bench standing in for the TLS proxy, the flood's source in
    X-Forwarded-For), or nginx with the documented site in front of it (HTTPS)."""

    port: int
    scheme: str  # of wrk's URL
    origin: str  # what a browser on the sign-in page sends as Origin
    flood_source: str  # the address the console records for the flood
    flood_headers: dict
    tls: ssl.SSLContext | None = None
    pages_from: str | None = None
    nginx: Nginx | None = None

    def client(self, cookies: dict | None = None, *, pages: bool = True) -> Client:
        cookies = cookies if cookies is not None else {}
        return Client(self.port, cookies, tls=self.tls, source=self.pages_from if pages else None)

    def flood_answers(self) -> Counter:
        """Through nginx: its answers to the flood's POSTs, by status (429: nginx's own)."""
        if self.nginx is None:
            return Counter()
        return Counter(
            line["status"]
            for line in self.nginx.access_lines()
            if line["method"] == "POST" and line["remote_addr"] == self.flood_source
        )


def gunicorn_entrance(console: Server) -> Entrance:
    return Entrance(
        port=console.port,
        scheme="http",
        origin=f"https://127.0.0.1:{console.port}",
        flood_source=FLOOD_SOURCE,
        flood_headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": FLOOD_SOURCE},
    )


@contextlib.contextmanager
def nginx_entrance(console: Server):
    directory = Path(tempfile.mkdtemp(prefix="audit_nginx_"))
    certificate = self_signed_certificate(directory, "console.intranet.example")
    # No push server in this bench: its upstream is never used (push is off).
    upstream = f"127.0.0.1:{console.port}"
    # As Debian's nginx.conf: a worker per CPU.
    nginx = Nginx(directory, upstream, upstream, certificate, workers="auto")
    try:
        nginx.wait_until_serving()
        yield Entrance(
            port=nginx.https_port,
            scheme="https",
            # nginx passes the Host without its port, as a browser on port 443 would send it.
            origin="https://127.0.0.1",
            flood_source=NGINX_FLOOD_SOURCE,
            flood_headers={},
            tls=ssl.create_default_context(cafile=str(certificate[0])),
            pages_from=NGINX_PAGES_FROM,
            nginx=nginx,
        )
    finally:
        nginx.stop()


# --- pages -------------------------------------------------------------------------------------


@dataclass
class Page:
    """One open meeting page: its agent's cookies, what its poller sends, and where its push
    stream is ("" when push is off)."""

    path: str
    cookies: dict
    vals: dict
    push: str = ""

    def query(self) -> str:
        return f"{self.path}?{urlencode(self.vals)}"


def htmx_headers(path: str) -> dict:
    return {
        "HX-Request": "true",
        "HX-Trigger": "live-poller",
        "HX-Target": "live-poller",
        "HX-Current-URL": f"https://127.0.0.1{path}",
    }


def open_page(client: Client, path: str) -> Page:
    """Open the meeting page with `client` (which carries its agent's cookies)."""
    status, _, body = client.request("GET", path)
    vals = poller_values(body)
    if status != 200 or not vals:
        raise SystemExit(f"the meeting page did not open with a poller: {status}")
    return Page(path, client.cookies, vals, push_url(body))


def refresh(client: Client, page: Page) -> tuple:
    """One refresh as the page's poller makes it; a 200 fragment carries the poller's new values."""
    client.cookies = page.cookies
    answer = client.request("GET", page.query(), headers=htmx_headers(page.path))
    if answer[0] == 200:
        page.vals = poller_values(answer[2]) or page.vals
    return answer


def settle_page(client: Client, page: Page) -> None:
    """Refresh until the page shows what a refresh would show (204), as a page soon does."""
    for _ in range(3):
        if refresh(client, page)[0] == 204:
            return


def refresh_pages(
    entrance: Entrance, pages: list[Page], interval: float, seconds: float
) -> OpenLoop:
    """Every page refreshed every `interval` seconds (open loop, round robin: request k refreshes
    page k mod N), each thread on a connection of its own."""
    turn = itertools.count()

    def make_call(_index: int):
        client = entrance.client()
        return lambda: refresh(client, pages[next(turn) % len(pages)])

    return open_loop(make_call, len(pages) / interval, seconds, threads=64)


# --- wrk ---------------------------------------------------------------------------------------


@dataclass
class Wrk:
    requests: int
    rate: float
    p50: float  # seconds
    not_2xx: int
    errors: str


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: dict | None = None,
    script: Path | None = None,
    nice: int = 0,
) -> Wrk:
    command = [
        *(["nice", "-n", str(nice)] if nice else []),
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        *(["-s", str(script)] if script else []),
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(  # noqa: S603 (wrk, with the bench's own arguments)
        [*command, url], capture_output=True, text=True, check=True
    ).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    not_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return Wrk(
        requests=int(re.search(r"(\d+) requests in", output).group(1)),
        rate=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50=_seconds(p50.group(1)) if p50 else float("nan"),
        not_2xx=int(not_2xx.group(1)) if not_2xx else 0,
        errors=errors.group(1) if errors else "",
    )


def post_script(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.lua"
    # The body is URL-encoded ASCII: a JSON string is a Lua string literal too.
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n')
    return path


# --- the flood ---------------------------------------------------------------------------------


def lock_out(entrance: Entrance) -> tuple[dict, str]:
    """From the flood's source: fail LOCKED_USERNAME's sign-in until it is locked out; return the
    CSRF cookie and token a locked-out sign-in then posts with."""
    from django.conf import settings

    visitor = entrance.client(pages=False)
    forwarded = entrance.flood_headers
    _, _, page = visitor.request("GET", "/accounts/login/", headers=forwarded)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    body = urlencode(
        {"username": LOCKED_USERNAME, "password": "wrong", "csrfmiddlewaretoken": token}
    )
    headers = forwarded | sign_in_headers(entrance.origin)
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        visitor.request("POST", "/accounts/login/", body=body, headers=headers)
    return dict(visitor.cookies), body


def sign_in_headers(origin: str) -> dict:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": origin,
        "Referer": f"{origin}/accounts/login/",
    }


def flood(entrance: Entrance, args: argparse.Namespace, scratch: Path, locked: tuple) -> dict:
    """Both floods at once from the one source, each with wrk at full speed."""
    cookies, locked_body = locked
    url = f"{entrance.scheme}://127.0.0.1:{entrance.port}/accounts/login/"
    common = entrance.flood_headers
    kinds = {
        "CSRF refusals": (
            post_script(scratch, "csrf", "username=someone&password=guess"),
            common | {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        "locked-out sign-ins": (
            post_script(scratch, "locked", locked_body),
            common
            | sign_in_headers(entrance.origin)
            | {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
        ),
    }
    results: dict = {}

    def one(name: str) -> None:
        script, headers = kinds[name]
        results[name] = wrk(
            url,
            connections=args.flood_connections,
            seconds=args.flood_seconds,
            headers=headers,
            script=script,
            nice=args.flood_nice,
        )

    threads = [threading.Thread(target=one, args=(name,)) for name in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if not subprocess.run(["which", "wrk"], capture_output=True).stdout:  # noqa: S607
        raise SystemExit("wrk is needed: apt-get install wrk")
    scale = REAL_INTERVAL / args.page_interval
    seal_every = max(10, round(REAL_SEAL_EVERY / scale))
    settings = {"AUDIT_SPAN_SEAL_EVERY": str(seal_every)}
    if args.nginx and NGINX is None:
        raise SystemExit("--nginx needs nginx: apt-get install nginx")
    with console_and_proxy(args, name="audit_volume", settings=settings) as servers:
        console = servers[2]
        with nginx_entrance(console) if args.nginx else contextlib.nullcontext() as through_nginx:
            run(args, seal_every, *servers, through_nginx or gunicorn_entrance(console))


def git_revision() -> str:
    def git(*command: str) -> str:
        return subprocess.run(  # noqa: S603 (git, on this checkout)
            ["git", *command],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (modified)" if git("status", "-s") else "")


def run(
    args, seal_every: int, fake, facts: dict, console: Server, proxy: Server, entrance: Entrance
) -> None:
    from django.db import connection

    started = time.monotonic()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: S607
    has_spans = console_spans() is not None
    print(
        f"# audit_volume at {git_revision()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f", PostgreSQL, {args.workers} workers, {os.cpu_count()} CPUs\n# uptime: {uptime}\n"
        f"# spans: {'yes' if has_spans else 'no'}; audit_seal: "
        f"{'yes' if has_audit_seal() else 'no'}; AUDIT_SPAN_SEAL_EVERY for the run: "
        f"{seal_every} s (real pages: {REAL_SEAL_EVERY} s at {REAL_INTERVAL} s a refresh)\n"
        "# pages and flood: "
        + (
            f"through nginx (HTTPS, docs/deploy/nginx-site.conf), the flood from "
            f"{entrance.flood_source}, the pages from {entrance.pages_from}"
            if entrance.nginx
            else f"straight at gunicorn, the flood as {entrance.flood_source} (X-Forwarded-For)"
        )
    )
    agents = [sign_in(console.port, f"agent{i}") for i in range(args.agents)]
    path = f"/meetings/fast/{facts['meeting']}/"
    calls_before = fake.call_count()
    recorded_before, _ = calls_recorded()

    # The page wrk refreshes, opened first: every audit table then has rows (and, once vacuumed,
    # the free-space and visibility maps the first rows of a table bring), so that the steps
    # below measure growth, not a table's first pages.
    page = open_page(Client(console.port, agents[0].cookies), path)
    settle = Client(console.port)
    settle_page(settle, page)

    # 1. Open the pages.
    before = audit_storage()
    pages = [
        open_page(entrance.client(agents[i % len(agents)].cookies), path) for i in range(args.pages)
    ]
    opened = audit_storage()
    print(
        f"opened {len(pages)} pages of {len(agents)} agents; the poller sends "
        f"{sorted(pages[0].vals)}"
    )

    # 2. Refresh them.
    refreshing = refresh_pages(entrance, pages, args.page_interval, args.duration)
    refreshed = audit_storage()
    answered = sum(n for status, n in refreshing.statuses.items() if status in (200, 204))

    # 3. Their final seals.
    parts = seal_open_spans([page.vals.get("span", "") for page in pages])
    sealed = audit_storage()

    # 5. The flood, while the pages refresh.
    locked = lock_out(entrance)
    flood_from = last_entry_id()
    groups = {"console (gunicorn)": console.process.pid}
    if entrance.nginx is not None:
        groups["nginx"] = entrance.nginx.process.pid
    cpu = [{name: server_cpu_seconds(pid) for name, pid in groups.items()}]
    quiet = refresh_pages(entrance, pages, args.page_interval, args.flood_seconds)
    cpu.append({name: server_cpu_seconds(pid) for name, pid in groups.items()})
    answered_before = entrance.flood_answers()
    flooded: dict = {}
    flooder = threading.Thread(
        target=lambda: flooded.update(
            flood(
                entrance,
                args,
                Path(tempfile.mkdtemp(prefix="audit_flood_")),
                locked,
            )
        )
    )
    flooder.start()
    during = refresh_pages(entrance, pages, args.page_interval, args.flood_seconds)
    flooder.join()
    cpu.append({name: server_cpu_seconds(pid) for name, pid in groups.items()})
    time.sleep(0.5)  # nginx writes its access log line once a request ends
    flood_answers = entrance.flood_answers() - answered_before
    flood_ended = datetime.now(UTC)
    entries_in_flood, _ = from_source(entrance.flood_source, flood_from)

    # 6. The unchanged refresh beside the bare proxy, with wrk.
    settle_page(settle, page)
    refresh_url = f"http://127.0.0.1:{console.port}{page.query()}"
    refresh_headers = htmx_headers(page.path) | {
        "X-Forwarded-Proto": "https",
        "Cookie": "; ".join(f"{k}={v}" for k, v in page.cookies.items()),
    }
    proxy_url = f"http://127.0.0.1:{proxy.port}/"
    rounds = []
    for _ in range(args.wrk_rounds):
        rounds.append(
            {
                "proxy p50": wrk(proxy_url, connections=1, seconds=args.latency_seconds),
                "refresh p50": wrk(
                    refresh_url,
                    connections=1,
                    seconds=args.latency_seconds,
                    headers=refresh_headers,
                ),
                "proxy rate": wrk(
                    proxy_url, connections=args.connections, seconds=args.wrk_seconds
                ),
                "refresh rate": wrk(
                    refresh_url,
                    connections=args.connections,
                    seconds=args.wrk_seconds,
                    headers=refresh_headers,
                ),
            }
        )

    # 7. Seal what the flood's minutes counted, then calls against the record.
    sealed_refusals = ""
    if has_audit_seal():
        minute_over = 61 - flood_ended.second
        if (datetime.now(UTC) - flood_ended).total_seconds() < minute_over:
            time.sleep(minute_over - (datetime.now(UTC) - flood_ended).total_seconds())
        output = subprocess.run(
            [sys.executable, "manage.py", "audit_seal"],
            cwd=ROOT,
            env=console.env,
            capture_output=True,
            text=True,
            check=False,
        )
        sealed_refusals = (output.stdout + output.stderr).strip().splitlines()[-1:]
    entries_from_source, requests_recorded = from_source(entrance.flood_source, flood_from)
    minutes = by_minute(entrance.flood_source, flood_from)
    time.sleep(1)
    calls_at_fake = fake.call_count() - calls_before
    recorded_now, counted_how = calls_recorded()
    calls_on_record = recorded_now - recorded_before
    connection.close()

    report(
        args,
        before=before,
        opened=opened,
        refreshed=refreshed,
        sealed=sealed,
        refreshing=refreshing,
        answered=answered,
        parts=parts,
        quiet=quiet,
        during=during,
        flooded=flooded,
        entries_in_flood=entries_in_flood,
        entries_from_source=entries_from_source,
        requests_recorded=requests_recorded,
        minutes=minutes,
        sealed_refusals=sealed_refusals,
        rounds=rounds,
        calls=(calls_at_fake, calls_on_record, counted_how),
        entrance=entrance,
        flood_answers=flood_answers,
        flood_cpu={
            name: (cpu[1][name] - cpu[0][name], cpu[2][name] - cpu[1][name]) for name in groups
        },
        from_source_kinds=source_kinds(entrance.flood_source, flood_from),
    )
    print(f"\n(run took {time.monotonic() - started:.0f} s after start-up)")


# --- the table of figures ----------------------------------------------------------------------


def kb(value: float) -> str:
    return f"{value / 1024:,.1f} KB"


def size(value: float) -> str:
    for unit, scale in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return kb(value)


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def row(name: str, *values: str) -> None:
    print(f"| {name} | " + " | ".join(values) + " |")


def report(args, **f) -> None:
    before, opened, refreshed, sealed = f["before"], f["opened"], f["refreshed"], f["sealed"]
    pages, answered = args.pages, f["answered"]
    print("\n## Audit storage (every audit table and partition)\n")
    row("", "as written", "vacuumed (steady state)")
    row("---", "---:", "---:")
    per = {}
    for how in ("raw", "vacuumed"):
        open_bytes = getattr(opened, how) - before.vacuumed
        refresh_bytes = getattr(refreshed, how) - opened.vacuumed
        seal_bytes = getattr(sealed, how) - refreshed.vacuumed
        page_hour = (open_bytes + seal_bytes) / pages + REFRESHES_PER_HOUR * refresh_bytes / max(
            answered, 1
        )
        per[how] = (open_bytes, refresh_bytes, seal_bytes, page_hour)
    raw, vac = per["raw"], per["vacuumed"]
    row(f"opening {pages} pages (first looks)", kb(raw[0]), kb(vac[0]))
    row("… per page opened", kb(raw[0] / pages), kb(vac[0] / pages))
    row(f"{answered:,} refreshes in {args.duration:g} s", kb(raw[1]), kb(vac[1]))
    row("**… per refresh**", f"**{raw[1] / answered:,.0f} B**", f"**{vac[1] / answered:,.0f} B**")
    row(f"sealing the {pages} open spans ({f['parts']} parts)", kb(raw[2]), kb(vac[2]))
    row(
        f"**per open page-hour** (1 page + {REFRESHES_PER_HOUR} refreshes + its seal)",
        f"**{kb(raw[3])}**",
        f"**{kb(vac[3])}**",
    )
    days = args.working_days
    for label, count in ((f"{days} working days", days), ("365 days", 365)):
        row(
            f"a year of 1,000 open pages, 8 h a day, {label}",
            size(raw[3] * 1000 * 8 * count),
            size(vac[3] * 1000 * 8 * count),
        )
    print(
        "\n(relation sizes move in 8 KB pages, per relation and index: a step that writes little"
        " reads as 0 or 8 KB; more pages or a longer run make the figures finer)"
    )
    grown = {
        name: sealed.tables.get(name, 0) - before.tables.get(name, 0) for name in sealed.tables
    }
    print(
        "\ngrowth per table over the three steps (after vacuum): "
        + ", ".join(
            f"{name} {kb(n)}" for name, n in sorted(grown.items(), key=lambda i: -i[1]) if n
        )
    )

    entries = refreshed.entries - opened.entries
    print("\n## Chained entries\n")
    row("", "")
    row("---", "---:")
    row("appended while opening the pages", f"{opened.entries - before.entries:,}")
    row(f"appended during the {args.duration:g} s of refreshes", f"{entries:,}")
    row("**… per second**", f"**{entries / args.duration:,.1f}**")
    row("… per refresh", f"{entries / max(answered, 1):.3f}")
    row("appended by sealing the open spans", f"{sealed.entries - refreshed.entries:,}")

    r = f["refreshing"]
    print(
        f"\nrefresh phase: {len(r.latencies):,} refreshes at "
        f"{args.pages / args.page_interval:g}/s, "
        f"statuses {dict(r.statuses)}; p50 {ms(percentile(r.from_send, 0.5))}, "
        f"p99 {ms(percentile(r.from_send, 0.99))} from sending"
    )

    print("\n## The unchanged refresh beside the bare proxy (wrk)\n")
    rounds = f["rounds"]

    def median(name: str, value: str) -> float:
        return statistics.median(getattr(one[name], value) for one in rounds)

    proxy_p50, refresh_p50 = median("proxy p50", "p50"), median("refresh p50", "p50")
    proxy_rate, refresh_rate = median("proxy rate", "rate"), median("refresh rate", "rate")
    row("", "bare proxy", "unchanged refresh", "difference", "ratio")
    row("---", "---:", "---:", "---:", "---:")
    row(
        "p50, 1 connection",
        ms(proxy_p50),
        ms(refresh_p50),
        f"**+{ms(refresh_p50 - proxy_p50)}**",
        f"{refresh_p50 / proxy_p50:.2f} x",
    )
    row(
        f"throughput, {args.connections} connections",
        f"{proxy_rate:,.0f} req/s",
        f"{refresh_rate:,.0f} req/s",
        f"{refresh_rate - proxy_rate:+,.0f} req/s",
        f"**{refresh_rate / proxy_rate:.1%}**",
    )
    row(
        f"p50, {args.connections} connections",
        ms(median("proxy rate", "p50")),
        ms(median("refresh rate", "p50")),
        f"+{ms(median('refresh rate', 'p50') - median('proxy rate', 'p50'))}",
        f"{median('refresh rate', 'p50') / median('proxy rate', 'p50'):.2f} x",
    )
    bad = [
        f"{name}: {one[name].not_2xx} not 2xx {one[name].errors}".strip()
        for one in rounds
        for name in one
        if one[name].not_2xx or one[name].errors
    ]
    if bad:
        print("wrk: " + "; ".join(bad))

    print(f"\n## A {args.flood_seconds:g} s flood from one source, while the pages refresh\n")
    quiet, during, flooded = f["quiet"], f["during"], f["flooded"]
    q50, d50 = percentile(quiet.from_send, 0.5), percentile(during.from_send, 0.5)
    row("", "")
    row("---", "---:")
    for name, result in flooded.items():
        row(f"{name} sent", f"{result.requests:,} ({result.rate:,.0f}/s)")
    row(
        "agents' refresh p50 before → during (from sending)",
        f"{ms(q50)} → {ms(d50)} (**{(d50 - q50) * 1000:+.1f} ms**)",
    )
    row(
        "… p99 before → during",
        f"{ms(percentile(quiet.from_send, 0.99))} → {ms(percentile(during.from_send, 0.99))}",
    )
    row(
        "… statuses before / during",
        f"{dict(quiet.statuses)} / {dict(during.statuses)}",
    )
    seconds = args.flood_seconds
    row("chained entries from the source right after the flood", f"{f['entries_in_flood']:,}")
    row("chained entries from the source, all sealed", f"{f['entries_from_source']:,}")
    row(
        "… by the minute each stands for (UTC)",
        ", ".join(f"{minute}: {n}" for minute, n in sorted(f["minutes"].items())) or "none",
    )
    row(
        "**… most in any one minute, per source**",
        f"**{max(f['minutes'].values(), default=0)}**",
    )
    sent = sum(result.requests for result in flooded.values())
    row(
        "flood requests answered (wrk) / on record (entries' repeats)",
        f"{sent:,} / {f['requests_recorded']:,}",
    )
    row("… what they are", "; ".join(f["from_source_kinds"]))
    for name, (before, during) in f["flood_cpu"].items():
        row(f"CPU of {name}, {seconds:g} s before → during", f"{before:.1f} s → {during:.1f} s")
    if args.flood_nice:
        row("the flood's wrk ran at niceness", str(args.flood_nice))
    if f["entrance"].nginx is not None:
        answers = f["flood_answers"]
        row(
            "… answered by nginx itself (its 429) / passed to the console (nginx's access log)",
            f"{answers[429]:,} / {sum(answers.values()) - answers[429]:,}",
        )
    if f["sealed_refusals"]:
        print(f"\naudit_seal: {f['sealed_refusals'][0]}")

    at_fake, on_record, how = f["calls"]
    verdict = "equal" if at_fake == on_record else "NOT EQUAL"
    print(
        f"\nConnvo calls at the fake {at_fake:,}, calls on record ({how}) {on_record:,}: "
        f"**{verdict}**"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
