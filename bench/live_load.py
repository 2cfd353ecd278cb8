"""What a live meeting page costs, next to what the same Connvo call costs without the console.

    .venv/bin/python bench/live_load.py             # PostgreSQL (a database of its own) + Redis
    .venv/bin/python bench/live_load.py --sqlite    # the embedded default: a SQLite file

Starts everything on loopback: two fake Connvo deployments (a fast one, and a slow one for the
slow-Connvo run) in a subprocess, a database of its own (PostgreSQL `bench_live_<random>`, dropped
at the end, or a SQLite file in a temporary directory), Redis keys under a prefix of its own
(deleted at the end), the console under `gunicorn -c gunicorn.conf.py` in production mode (as
tests/production.py runs it) and a bare proxy under the same settings (bench/bare_proxy.py). It
signs in --agents support agents through the sign-in page, then prints, in one run:

- sequential p50/p95 of a direct call to the fake, of the bare proxy, and of the console's live
  refresh (changed -> 200, unchanged -> 204) and full meeting page;
- closed-loop throughput (--connections clients, no think time) of the bare proxy and of the
  unchanged refresh, and their ratio; and where each side's time went: the cores its workers,
  the fake, the database backends and this process used during its rounds, the machine's spare
  CPU, and (PostgreSQL) what the busy backends waited on, sampled from pg_stat_activity;
- an open-loop run of refreshes at --rate per second for --duration seconds; each request's latency
  is measured from the time it was scheduled, so a stall is not hidden by the client waiting;
- an overload run (--overload times the measured closed-loop capacity, open loop), with the
  sign-in, lookup and audit pages timed while it runs, and the poll interval the console hands out;
- a slow-Connvo run: --slow-agents lookups of a meeting the slow fake answers in --slow-delay
  seconds, while /healthz, /readyz and another agent's refresh are timed;
- the fake's getMeeting call count against the calls on record (they must be equal), and the
  gunicorn workers' RSS.

The lookup limit is raised for the run (CONNVO_LOOKUPS_PER_MINUTE): a bench agent refreshes far
more often than a person. Prints figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import http.client
import importlib.util
import json
import os
import re
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.production import GUNICORN, children, free_port, production_env  # noqa: E402
from tests.production import stop as stop_process  # noqa: E402

PASSWORD = "bench-agent-password-1"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/5"


# --- the fake Connvo, in a subprocess of its own ------------------------------------------------


def serve_fake() -> None:
    """`live_load.py --serve-fake`: two fakes; one JSON line of facts, then commands on stdin."""
    from fakeconnvo.server import FakeConnvo

    # `floor` answers the direct calls and the bare proxy, so that the console's two are left
    # with the calls it made (and audited).
    fast, slow, floor = FakeConnvo().start(), FakeConnvo().start(), FakeConnvo().start()
    facts = {
        "floor": floor.url,
        "floor_token": floor.token_for("agent", expires_in=8 * 3600),
        "floor_meeting": floor.meeting_id("standup"),
        "fast": fast.url,
        "slow": slow.url,
        "token": fast.token_for("agent", expires_in=8 * 3600),
        "slow_token": slow.token_for("agent", expires_in=8 * 3600),
        "meeting": fast.meeting_id("standup"),
        "slow_meeting": slow.meeting_id("standup"),
    }
    print(json.dumps(facts), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["count"]:
            print(fast.call_count + slow.call_count, flush=True)
        elif command[:1] == ["slow"]:
            slow.misbehave("slow", delay=float(command[1]))
            print("ok", flush=True)
    for fake in (fast, slow, floor):
        fake.stop()


class Fake:
    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (this script)
            [sys.executable, __file__, "--serve-fake"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.facts = json.loads(self.process.stdout.readline())

    def ask(self, command: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def call_count(self) -> int:
        return int(self.ask("count"))

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


# --- HTTP from the clients ---------------------------------------------------------------------


@dataclass
class Client:
    """One keep-alive connection, reopened when the server closes it. Plain HTTP to gunicorn
    (standing in for the TLS proxy), or HTTPS to nginx with `tls` (the certificate to trust);
    from `source` (a loopback address) when given."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    connection: http.client.HTTPConnection | None = None
    tls: ssl.SSLContext | None = None
    source: str | None = None

    def request(
        self, method: str, path: str, *, headers: dict | None = None, body: str | None = None
    ) -> tuple[int, dict, bytes]:
        headers = {
            "Host": f"127.0.0.1:{self.port}",
            # Production mode redirects plain HTTP; the bench stands in for the TLS proxy.
            "X-Forwarded-Proto": "https",
            **(headers or {}),
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            if self.connection is None:
                self.connection = self.connect()
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
                continue
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    cookie_name, _, rest = value.partition("=")
                    self.cookies[cookie_name] = rest.split(";", 1)[0]
            if response.getheader("Connection", "").lower() == "close":
                self.connection.close()
                self.connection = None
            return response.status, dict(response.getheaders()), data
        raise AssertionError("unreachable")

    def connect(self) -> http.client.HTTPConnection:
        source = (self.source, 0) if self.source else None
        if self.tls is None:
            return http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=60, source_address=source
            )
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=60, source_address=source, context=self.tls
        )


def sign_in(port: int, username: str) -> Client:
    client = Client(port)
    _, _, page = client.request("GET", "/accounts/login/")
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    status, _, _ = client.request(
        "POST",
        "/accounts/login/",
        body=urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": f"https://127.0.0.1:{port}",
            "Referer": f"https://127.0.0.1:{port}/accounts/login/",
        },
    )
    if status != 302 or "sessionid" not in client.cookies:
        raise SystemExit(f"signing in {username} failed: {status}")
    return client


# --- figures -----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:8.1f}"


def sequential(call, samples: int) -> tuple[list[float], Counter]:
    for _ in range(min(20, samples)):  # warm up connections, caches and workers
        call()
    times, statuses = [], Counter()
    for _ in range(samples):
        started = time.perf_counter()
        statuses[call()] += 1
        times.append(time.perf_counter() - started)
    return times, statuses


def closed_loop(make_call, connections: int, seconds: float) -> tuple[float, Counter]:
    statuses: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        call = make_call(index)
        mine = Counter()
        while time.monotonic() < deadline:
            mine[call()] += 1
        with lock:
            statuses.update(mine)

    started = time.monotonic()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(run, range(connections)))
    return sum(statuses.values()) / (time.monotonic() - started), statuses


@dataclass
class OpenLoop:
    latencies: list[float]
    statuses: Counter
    retry_after: Counter
    intervals: Counter
    live_states: Counter
    # How late the client itself sent each request (a busy bench process is late too: the
    # latencies include it, so that a stall cannot hide, but it is not the console's).
    send_lags: list[float] = field(default_factory=list)
    by_status: dict = field(default_factory=dict)
    # Each request's latency from the moment the bench sent it: the console's own part.
    from_send: list[float] = field(default_factory=list)


def open_loop(make_call, rate: float, seconds: float, threads: int = 400) -> OpenLoop:
    """Requests at fixed times; latency from the scheduled time (a late start counts)."""
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: Counter = Counter()
    retry_after: Counter = Counter()
    intervals: Counter = Counter()
    live_states: Counter = Counter()
    send_lags: list[float] = []
    from_send: list[float] = []
    by_status: dict = {}
    lock = threading.Lock()
    local = threading.local()
    start = time.perf_counter() + 0.5

    def one(index: int) -> None:
        if not hasattr(local, "call"):
            local.call = make_call(index)
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send_lag = time.perf_counter() - scheduled
        try:
            status, headers, body = local.call()
        except (OSError, http.client.HTTPException):
            status, headers, body = "error", {}, b""
        latency = time.perf_counter() - scheduled
        interval = re.search(rb"every (\d+)s", body)
        state = re.search(rb'data-status="(\w+)"', body)
        with lock:
            latencies.append(latency)
            send_lags.append(send_lag)
            from_send.append(latency - send_lag)
            by_status.setdefault(status, []).append(latency)
            statuses[status] += 1
            if "Retry-After" in headers:
                retry_after[headers["Retry-After"]] += 1
            if interval:
                intervals[int(interval.group(1))] += 1
            if state:
                live_states[state.group(1).decode()] += 1

    with ThreadPoolExecutor(threads) as pool:
        for index in range(total):
            # Hand requests to the pool just ahead of their time, so the pool's queue stays short.
            ahead = start + index / rate - time.perf_counter() - 0.2
            if ahead > 0:
                time.sleep(ahead)
            pool.submit(one, index)
    return OpenLoop(
        latencies,
        statuses,
        retry_after,
        intervals,
        live_states,
        send_lags=send_lags,
        by_status=by_status,
        from_send=from_send,
    )


# --- the servers -------------------------------------------------------------------------------


class Server:
    """The console under gunicorn.conf.py (or `app` instead of the console), or, `push`, its push
    server under gunicorn-push.conf.py (docs/deploy.md 3b), on a free port of its own."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        name: str,
        app: str | None,
        *,
        push: bool = False,
    ) -> None:
        self.port = free_port()
        bind = "GUNICORN_PUSH_BIND" if push else "GUNICORN_BIND"
        self.env = env | {bind: f"127.0.0.1:{self.port}"}
        self.log = (log_dir / f"{name}.log").open("w")
        conf = "gunicorn-push.conf.py" if push else "gunicorn.conf.py"
        command = [str(GUNICORN), "-c", conf, *([app] if app else [])]
        self.process = subprocess.Popen(  # noqa: S603 (gunicorn, as make serve runs it)
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.name = name
        self.log_path = log_dir / f"{name}.log"

    def wait(self, path: str = "/healthz") -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = Client(self.port).request("GET", path)
                if status < 500:
                    return
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """gunicorn's workers: the processes its master started."""
        return child_pids(self.process.pid)

    def worker_rss_mb(self) -> list[float]:
        return sorted(process_status(pid).get("rss_mb", 0.0) for pid in self.worker_pids())

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server since it started: its workers, those that
        exited (recycled after max_requests, or killed) included, and its master."""
        return server_cpu_seconds(self.process.pid)

    def server_pids(self) -> list[int]:
        """The master and its workers: what `Where` measures of a server (the master counted
        with the workers it reaped, so that a worker recycled during a round keeps its time)."""
        return [self.process.pid, *self.worker_pids()]

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def process_cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of a process from /proc (0 once it is gone); with `reaped`, also the time
    of its children that exited and that it waited for (cutime + cstime): a gunicorn master's
    workers that were recycled (max_requests) or killed."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12])
    if reaped:
        used += int(fields[13]) + int(fields[14])
    return used / os.sysconf("SC_CLK_TCK")


def process_status(pid: int) -> dict[str, float]:
    """A process's RSS (MB), threads and open file descriptors from /proc, {} once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return {}
    rss = re.search(r"VmRSS:\s+(\d+) kB", text)
    threads = re.search(r"Threads:\s+(\d+)", text)
    return {
        "rss_mb": int(rss.group(1)) / 1024 if rss else 0.0,
        "threads": int(threads.group(1)) if threads else 0,
        "fds": fds,
    }


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (a server master's workers), those exited and not yet reaped
    included: until the master waits for one, its CPU time is its own, not the master's."""
    return sorted(children(pid, zombies=True))


def server_cpu_seconds(pid: int) -> float:
    """utime + stime of a server's master `pid`, its live workers and those it reaped."""
    return process_cpu_seconds(pid, reaped=True) + sum(
        process_cpu_seconds(one) for one in child_pids(pid)
    )


# --- where a closed loop's time goes ------------------------------------------------------------


def machine_jiffies() -> tuple[int, int]:
    """(all CPU time, time the bench's processes could have used) of the machine, in jiffies,
    from /proc/stat: idle and iowait, and `nice` (processes at a positive niceness, such as a
    background job at nice 19, which yield to the bench's)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user, nice, system, idle, iowait, irq, softirq, steal
    nice, idle, iowait = fields[1], fields[3], fields[4]
    return sum(fields[:8]), idle + iowait + nice


def database_backends() -> list[int]:
    """The PostgreSQL backends serving the bench's database (none on SQLite)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


class Where:
    """CPU used by each process group during a closed-loop run, in cores (CPU seconds per
    second), and on PostgreSQL what the database's busy backends were waiting on (sampled)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.cores: dict[str, list[float]] = {}
        self.waits: Counter = Counter()

    @contextlib.contextmanager
    def measuring(self, *, waits: bool):
        before = {name: self._cpu(pids()) for name, pids in self.groups.items()}
        total_before, spare_before = machine_jiffies()
        started = time.monotonic()
        stop = threading.Event()
        sampler = None
        if waits:
            sampler = threading.Thread(target=self._sample_waits, args=(stop,), daemon=True)
            sampler.start()
        try:
            yield
        finally:
            stop.set()
            if sampler is not None:
                sampler.join()
            seconds = time.monotonic() - started
            for name, pids in self.groups.items():
                used = sum(
                    cpu - before[name].get(pid, 0.0) for pid, cpu in self._cpu(pids()).items()
                )
                self.cores.setdefault(name, []).append(used / seconds)
            total, spare = machine_jiffies()
            self.cores.setdefault("spare (idle, or used by niced jobs)", []).append(
                (spare - spare_before) / (total - total_before) * os.cpu_count()
            )

    @staticmethod
    def _cpu(pids: list[int]) -> dict[int, float]:
        # With the children each waited for: a server's master keeps the time of a worker
        # recycled or killed during the round (a 40 s round recycles both workers of the proxy).
        return {pid: process_cpu_seconds(pid, reaped=True) for pid in pids}

    def _sample_waits(self, stop: threading.Event) -> None:
        from django.db import connection

        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            while not stop.wait(0.02):
                cursor.execute(
                    "SELECT coalesce(wait_event_type || ': ' || wait_event, 'running') "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND pid <> pg_backend_pid()"
                )
                self.waits.update(row[0] for row in cursor.fetchall())
        connection.close()


def report_where(proxy_where: Where, refresh_where: Where) -> None:
    print("\n## where the closed loop's time goes: cores used during each side's rounds (median)")
    names = list(dict.fromkeys([*proxy_where.cores, *refresh_where.cores]))
    print(f"{'':40} {'bare proxy':>10} {'refresh':>10}")
    for name in names:
        sides = [
            statistics.median(w.cores[name]) if name in w.cores else None
            for w in (proxy_where, refresh_where)
        ]
        print(f"{name:40} " + " ".join("         -" if v is None else f"{v:10.2f}" for v in sides))
    busy = sum(refresh_where.waits.values())
    if busy:
        print(
            "the refresh rounds' busy database backends, sampled every 20 ms: "
            + ", ".join(f"{what} {n / busy:.0%}" for what, n in refresh_where.waits.most_common(6))
        )


# --- the run -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--agents", type=int, default=20, help="agents signed in (default 20)")
    parser.add_argument("--samples", type=int, default=300, help="sequential samples per row")
    parser.add_argument("--connections", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--closed-seconds", type=float, default=10, help="each closed-loop run")
    parser.add_argument("--rate", type=float, default=100, help="open loop: refreshes a second")
    parser.add_argument("--duration", type=float, default=30, help="open loop: seconds")
    parser.add_argument(
        "--overload", type=float, default=3, help="overload run: times the closed-loop capacity"
    )
    parser.add_argument("--overload-seconds", type=float, default=15)
    parser.add_argument("--slow-agents", type=int, default=30)
    parser.add_argument("--slow-delay", type=float, default=4)
    parser.add_argument(
        "--closed-rounds", type=int, default=3, help="closed loop: rounds of proxy then refresh"
    )
    parser.add_argument("--skip", default="", help="comma-separated: overload,slow")
    parser.add_argument("--workers", default="2", help="GUNICORN_WORKERS (default 2)")
    parser.add_argument("--threads", default="", help="GUNICORN_THREADS (default: the conf's)")
    return parser.parse_args()


def create_database(
    args: argparse.Namespace, scratch: Path, *, prefix: str = "bench_live"
) -> tuple[str, str | None]:
    if getattr(args, "sqlite", False):
        return f"sqlite:///{scratch / 'bench.sqlite3'}", None
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{POSTGRES}/{name}", name


def drop_database(name: str | None) -> None:
    if name is None:
        return
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def delete_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


def prepare_console(env: dict[str, str], agents: int, facts: dict) -> None:
    """Migrate, and make the agents with their Connvo tokens (through the console's own code)."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from meetings import pasted_tokens

    call_command("migrate", verbosity=0)
    support = Group.objects.get(name="Support")
    # One hash for every agent (each takes most of a second): signing in still checks it in full.
    password = make_password(PASSWORD)
    for index in range(agents):
        user = get_user_model().objects.create(username=f"agent{index}", password=password)
        user.groups.add(support)
        pasted_tokens.store_token(user=user, deployment_name="fast", raw_token=facts["token"])
        pasted_tokens.store_token(user=user, deployment_name="slow", raw_token=facts["slow_token"])


def console_spans():
    """The console's `audit.spans` module (#22), or None at a commit from before spans (the
    benches measure such commits side by side with today's)."""
    if importlib.util.find_spec("audit.spans") is None:
        return None
    from audit import spans

    return spans


def calls_recorded() -> tuple[int, str]:
    """The Connvo calls the audit log has on record, and how they were counted: the spans'
    calls where the console has them (a refresh is a count in its page's span, not an entry),
    else the lookup entries."""
    spans = console_spans()
    if hasattr(spans, "calls_on_record"):
        return spans.calls_on_record(), "audit.spans.calls_on_record()"
    from audit.models import Action, AuditEntry

    return AuditEntry.objects.filter(action=Action.LOOKUP).count(), "audit entries of lookups"


@contextlib.contextmanager
def console_and_proxy(args: argparse.Namespace, *, name: str, settings: dict | None = None):
    """Everything a run needs, on loopback, and gone after it: the fakes, a database of its own,
    Redis keys under a prefix of its own, --agents agents with their Connvo tokens, and the console
    and the bare proxy under gunicorn in production mode (with `settings` added to the console's
    environment). Yields (fake, facts, console, proxy); Django is set up in this process on the
    console's database, so a bench can read it."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{name}_"))
    fake = Fake()
    facts = fake.facts
    database_url, database_name = create_database(
        args, scratch, prefix=getattr(args, "db_prefix", "bench_live")
    )
    prefix = f"bench-{secrets.token_hex(6)}"
    threads = {"GUNICORN_THREADS": args.threads} if args.threads else {}
    env = production_env(
        DATABASE_URL=database_url,
        CONN_MAX_AGE="60",  # as docs/deploy.md recommends
        CACHE_URL=REDIS,
        CACHE_KEY_PREFIX=prefix,
        STATIC_ROOT=str(scratch / "static"),
        CONNVO_DEPLOYMENTS=f"fast={facts['fast']},slow={facts['slow']}",
        CONNVO_DEFAULT_DEPLOYMENT="fast",
        CONNVO_LOOKUPS_PER_MINUTE="1000000",
        GUNICORN_WORKERS=args.workers,
        **threads,
        **(settings or {}),
    )
    servers: list[Server] = []
    try:
        prepare_console(env, args.agents, facts)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        console = Server(env, scratch, "console", None)
        proxy_env = env | {
            "BARE_PROXY_URL": facts["floor"],
            "BARE_PROXY_TOKEN": facts["floor_token"],
            "BARE_PROXY_MEETING": facts["floor_meeting"],
        }
        proxy = Server(proxy_env, scratch, "proxy", "bench.bare_proxy:application")
        servers = [console, proxy]
        console.wait()
        proxy.wait("/")
        yield fake, facts, console, proxy
    finally:
        for server in servers:
            server.stop()
        fake.stop()
        if database_name is not None:
            from django.db import connections

            connections.close_all()
            drop_database(database_name)
        delete_redis_keys(prefix)


def main() -> None:
    args = parse_args()
    if args.serve_fake:
        serve_fake()
        return
    skip = set(filter(None, args.skip.split(",")))
    with console_and_proxy(args, name="live_load") as (fake, facts, console, proxy):
        run(args, skip, fake, facts, console, proxy)


def run(args, skip, fake: Fake, facts: dict, console: Server, proxy: Server) -> None:
    from django.db import connection

    print(
        f"# live_load: {'SQLite' if args.sqlite else 'PostgreSQL'}, "
        f"{args.workers} workers x {args.threads or 'conf'} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M UTC')}"
    )
    started = time.monotonic()
    agents = [sign_in(console.port, f"agent{i}") for i in range(args.agents)]
    print(f"signed in {len(agents)} agents in {time.monotonic() - started:.1f} s")
    page = f"/meetings/fast/{facts['meeting']}/"
    upstream = urlsplit(facts["floor"])
    body = json.dumps({"args": {"meetingId": facts["floor_meeting"]}, "format": "json"})
    direct_headers = {
        "Authorization": f"Bearer {facts['floor_token']}",
        "Content-Type": "application/json",
    }
    # What htmx sends for the page's poller.
    fragment = {
        "HX-Request": "true",
        "HX-Trigger": "live-poller",
        "HX-Current-URL": f"https://127.0.0.1{page}",
    }
    # The page, as a browser opens it: its poller's values are what every refresh sends.
    _, _, first = agents[0].request("GET", page)
    first_state = poller_values(first)

    def direct_call():
        connection_ = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)

        def call():
            connection_.request(
                "POST",
                "/api/run/meetings/queries/getMeeting",
                body=body,
                headers=direct_headers,
            )
            response = connection_.getresponse()
            response.read()
            return response.status

        return call

    def proxy_call(index=0):
        client = Client(proxy.port)
        return lambda: client.request("GET", "/")[0]

    def refresh(index=0, *, changed=False):
        """A page's poller: its own connection, one agent's cookies, and what the last fragment
        it received told it (what it shows and how often to poll), like the real page."""
        client = Client(console.port, cookies=dict(agents[index % len(agents)].cookies))
        state = dict(first_state)

        def call():
            query = state | ({"seen": ""} if changed else {})
            answer = client.request("GET", f"{page}?{urlencode(query)}", headers=fragment)
            if answer[0] == 200 and not changed:
                state.update(poller_values(answer[2]))
            return answer

        return call

    def status_of(make):
        call = make()
        return lambda: call()[0]

    def refresh_client(index):
        return Client(console.port, cookies=dict(agents[index % len(agents)].cookies))

    rows = [
        ("direct call to the fake", direct_call()),
        ("bare proxy (gunicorn)", proxy_call()),
        ("refresh, changed -> 200", status_of(lambda: refresh(0, changed=True))),
        ("refresh, unchanged -> 204", status_of(lambda: refresh(1))),
        ("full meeting page", status_of(lambda: full_page(refresh_client(2), page))),
    ]

    upstream_before = fake.call_count()
    recorded_before, _ = calls_recorded()
    print(f"\n## sequential, {args.samples} requests each")
    print(f"{'':28} {'p50 ms':>8} {'p95 ms':>8}  statuses")
    p50 = {}
    for name, call in rows:
        times, statuses = sequential(call, args.samples)
        p50[name] = percentile(times, 0.5)
        print(f"{name:28} {ms(p50[name])} {ms(percentile(times, 0.95))}  {dict(statuses)}")
    print(
        f"unchanged refresh minus bare proxy, p50: "
        f"{(p50['refresh, unchanged -> 204'] - p50['bare proxy (gunicorn)']) * 1000:.1f} ms"
    )

    print(
        f"\n## closed loop, {args.connections} connections, {args.closed_seconds:g} s each, "
        f"{args.closed_rounds} rounds taking turns"
    )
    # Taking turns, so that a disturbance on the machine lands on both sides, not on one.
    proxy_rates, refresh_rates = [], []
    shared = {
        "fake Connvo": lambda: [fake.process.pid],
        "bench client (this process)": lambda: [os.getpid()],
    }
    proxy_where = Where({"bare proxy's workers": proxy.server_pids, **shared})
    refresh_where = Where(
        {"console's workers": console.server_pids, "database backends": database_backends} | shared
    )
    for round_number in range(1, args.closed_rounds + 1):
        with proxy_where.measuring(waits=False):
            proxy_rate, proxy_statuses = closed_loop(
                lambda i: proxy_call(i), args.connections, args.closed_seconds
            )
        with refresh_where.measuring(waits=True):
            refresh_rate, refresh_statuses = closed_loop(
                lambda i: status_of(lambda: refresh(i)), args.connections, args.closed_seconds
            )
        proxy_rates.append(proxy_rate)
        refresh_rates.append(refresh_rate)
        print(
            f"round {round_number}: bare proxy {proxy_rate:6.0f} req/s {dict(proxy_statuses)}, "
            f"refresh, unchanged {refresh_rate:6.0f} req/s {dict(refresh_statuses)}, "
            f"ratio {refresh_rate / proxy_rate:.1%}"
        )
    proxy_rate, refresh_rate = statistics.median(proxy_rates), statistics.median(refresh_rates)
    print(f"bare proxy, median       {proxy_rate:8.0f} req/s")
    print(f"refresh, unchanged, med. {refresh_rate:8.0f} req/s")
    print(f"ratio of the medians     {refresh_rate / proxy_rate:8.1%}")
    report_where(proxy_where, refresh_where)

    print(f"\n## open loop: {args.rate:g} refreshes/s for {args.duration:g} s")
    result = open_loop(lambda i: refresh(i), args.rate, args.duration)
    report_open_loop(result)

    if "overload" not in skip:
        rate = args.overload * refresh_rate
        print(
            f"\n## overload: {rate:.0f} refreshes/s ({args.overload:g} x closed-loop capacity) "
            f"for {args.overload_seconds:g} s, with people using other pages"
        )
        probes: dict[str, list[float]] = {"sign-in page": [], "lookup page": [], "audit page": []}
        stop = threading.Event()
        watcher = threading.Thread(target=watch_pages, args=(console, agents, probes, stop))
        watcher.start()
        try:
            result = open_loop(lambda i: refresh(i), rate, args.overload_seconds)
        finally:
            stop.set()
            watcher.join()
        report_open_loop(result)
        for name, times in probes.items():
            print(
                f"  {name:14} while overloaded: p50 {ms(percentile(times, 0.5))} ms, "
                f"max {ms(max(times, default=float('nan')))} ms ({len(times)} loads)"
            )

    if "slow" not in skip:
        slow_connvo(args, fake, facts, console, agents, refresh)

    time.sleep(1)  # let the last refreshes of the open-loop runs finish
    upstream_calls = fake.call_count() - upstream_before
    recorded_now, counted_how = calls_recorded()
    on_record = recorded_now - recorded_before
    verdict = "equal" if upstream_calls == on_record else "NOT EQUAL"
    print(
        f"\nconsole's getMeeting calls at the fake {upstream_calls}, calls on record "
        f"({counted_how}) {on_record}: {verdict}"
    )
    print(f"\nworker RSS after the run (MB): console {console.worker_rss_mb()}")
    print(f"                               bare proxy {proxy.worker_rss_mb()}")
    connection.close()


_POLLER = re.compile(rb"<div id=\"live-poller\"[^>]*>")
_HX_VALS = re.compile(rb"hx-vals='([^']*)'")


def poller_values(page: bytes) -> dict:
    """What the page's live poller sends with each refresh: its hx-vals, read from the page or
    fragment as htmx reads them (everything in them: what it shows, its interval, its span...),
    so that a bench sends what a browser sends. {} when the page no longer polls."""
    poller = _POLLER.search(page)
    vals = _HX_VALS.search(poller.group(0)) if poller else None
    if vals is None:
        return {}
    return {
        name: "" if value is None else value
        for name, value in json.loads(html.unescape(vals.group(1).decode())).items()
    }


_PUSH_URL = re.compile(rb'sse-connect="([^"]*)"')


def push_url(page: bytes) -> str:
    """Where the page's push stream is (its `sse-connect`, the span key in it), as the browser
    reads it; "" when the page is not live by push."""
    found = _PUSH_URL.search(page)
    return html.unescape(found.group(1).decode()) if found else ""


def full_page(client: Client, page: str):
    return lambda: client.request("GET", page)


def report_open_loop(result: OpenLoop) -> None:
    latencies = result.latencies
    ok = {200, 204}
    errors = sum(count for status, count in result.statuses.items() if status not in ok)
    print(
        f"p50 {ms(percentile(latencies, 0.5))} ms   p99 {ms(percentile(latencies, 0.99))} ms   "
        f"max {ms(max(latencies))} ms   not 200/204: {errors}   statuses {dict(result.statuses)}"
    )
    for status, times in sorted(result.by_status.items(), key=lambda item: str(item[0])):
        over = sum(1 for latency in times if latency > 2)
        print(
            f"  {status}: p50 {ms(percentile(times, 0.5))} ms   "
            f"p99 {ms(percentile(times, 0.99))} ms   max {ms(max(times))} ms   "
            f"over 2 s: {over} of {len(times)}"
        )
    print(
        f"  the bench's own lateness in sending: p99 {ms(percentile(result.send_lags, 0.99))} ms"
        f"   max {ms(max(result.send_lags))} ms"
    )
    over = sum(1 for latency in result.from_send if latency > 2)
    print(
        f"  from sending to the answer: p50 {ms(percentile(result.from_send, 0.5))} ms   "
        f"p99 {ms(percentile(result.from_send, 0.99))} ms   max {ms(max(result.from_send))} ms"
        f"   over 2 s: {over}"
    )
    if result.retry_after:
        print(f"  Retry-After handed out: {dict(result.retry_after)}")
    if result.intervals:
        print(f"  poll intervals handed out (s): {dict(sorted(result.intervals.items()))}")
    if result.live_states:
        print(f"  live status of the 200s: {dict(result.live_states)}")


def watch_pages(console: Server, agents, probes, stop: threading.Event) -> None:
    visitor = Client(console.port)
    agent = Client(console.port, cookies=dict(agents[-1].cookies))
    pages = [
        ("sign-in page", visitor, "/accounts/login/"),
        ("lookup page", agent, "/"),
        ("audit page", agent, "/audit/"),
    ]
    while not stop.is_set():
        for name, client, path in pages:
            started = time.perf_counter()
            with contextlib.suppress(OSError, http.client.HTTPException):
                client.request("GET", path)
            probes[name].append(time.perf_counter() - started)
        stop.wait(0.25)


def slow_connvo(args, fake: Fake, facts: dict, console: Server, agents, refresh) -> None:
    print(
        f"\n## slow Connvo: {args.slow_agents} lookups of a meeting answered in "
        f"{args.slow_delay:g} s, while health probes and another agent's refreshes run"
    )
    fake.ask(f"slow {args.slow_delay}")
    slow_page = f"/meetings/slow/{facts['slow_meeting']}/"
    done = threading.Event()
    slow_times: list[float] = []
    lock = threading.Lock()

    def slow_lookup(index: int) -> None:
        client = Client(console.port, cookies=dict(agents[index % len(agents)].cookies))
        started = time.perf_counter()
        client.request("GET", slow_page)
        with lock:
            slow_times.append(time.perf_counter() - started)

    probes: dict[str, list[float]] = {"/healthz": [], "/readyz": [], "refresh (fast)": []}

    def probe() -> None:
        health = Client(console.port)
        other = refresh(len(agents) - 1)
        while not done.is_set():
            for name, call in (
                ("/healthz", lambda: health.request("GET", "/healthz")),
                ("/readyz", lambda: health.request("GET", "/readyz")),
                ("refresh (fast)", other),
            ):
                started = time.perf_counter()
                with contextlib.suppress(OSError, http.client.HTTPException):
                    call()
                probes[name].append(time.perf_counter() - started)
            time.sleep(0.1)

    prober = threading.Thread(target=probe)
    with ThreadPoolExecutor(args.slow_agents) as pool:
        futures = [pool.submit(slow_lookup, i) for i in range(args.slow_agents)]
        time.sleep(0.3)
        prober.start()
        for future in futures:
            future.result()
    done.set()
    prober.join()
    print(f"  slow lookups: p50 {ms(percentile(slow_times, 0.5))} ms, max {ms(max(slow_times))} ms")
    for name, times in probes.items():
        print(
            f"  {name:16} p50 {ms(percentile(times, 0.5))} ms   max {ms(max(times))} ms "
            f"({len(times)} probes)"
        )


if __name__ == "__main__":
    main()
