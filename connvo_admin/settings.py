"""Settings for the Connvo Support Console.

Every value comes from the environment (or an optional `.env` file) through django-environ. The
defaults run the embedded demo on one machine (SQLite, local-memory cache); production values are
listed in `.env.example` and the README.
"""

import re
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from connvo_admin.environment import Env
from connvo_admin.secrets import (
    DEMO_AUDIT_CHAIN_KEY,
    DEMO_SECRET_KEY,
    DEMO_TOKEN_ENCRYPTION_KEY,
    find_secret_problems,
    refusal,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Numbers only through env.whole_number / env.decimal_number, which name a variable they cannot
# read (django-environ's env.int raises a bare ValueError that names none).
env = Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)


def _strict_bool(name: str, default: bool) -> bool:
    """Read a boolean, refusing anything that is not clearly true or false (a typo must not
    silently turn DEBUG on or off)."""
    raw = env.str(name, default="").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def _positive_float(name: str, default: float) -> float:
    value = env.decimal_number(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, not {value}.")
    return value


# DEBUG off is production mode: secure cookies, HTTPS and HSTS by default, and no demo secret
# (refused at the end of this module). `make demo` and the tests run with DEBUG on.
DEBUG = _strict_bool("DEBUG", default=False)
# Empty counts as unset: the demo key, which production mode refuses.
SECRET_KEY = env.str("SECRET_KEY", default="") or DEMO_SECRET_KEY
# Previous signing keys, still accepted while SECRET_KEY is being rotated (docs/deploy.md).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "meetings",
    "audit",
    "connvo_admin",
    "accounts",
    "axes",
]

MIDDLEWARE = [
    # `request.htmx` for every middleware below (the request log, the session timeouts).
    "django_htmx.middleware.HtmxMiddleware",
    # So that every request (even one refused below) has a request id and a log line.
    "connvo_admin.middleware.RequestLogMiddleware",
    # Before anything that checks the Host header or redirects to HTTPS: load balancers probe
    # each host by its address, over plain HTTP.
    "connvo_admin.health.HealthCheckMiddleware",
    # Before the session is read: a live refresh that waited too long for a thread is answered
    # at once with 503 + Retry-After (connvo_admin/capacity.py).
    "connvo_admin.capacity.LoadSheddingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionTimeoutMiddleware",
    "accounts.middleware.NoStoreWhenSignedInMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "meetings.middleware.BrowserTimezoneMiddleware",
    # Near the end, so it sees a view's database failure first (connvo_admin/unavailable.py).
    "connvo_admin.unavailable.DatabaseUnavailableMiddleware",
    # Last: turns a sign-in refused for a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "connvo_admin.urls"
WSGI_APPLICATION = "connvo_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.database("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let gunicorn's threads write audit rows without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
# PostgreSQL: a connection per request would cost every page and live refresh a TCP handshake,
# TLS and authentication before its first query, so each thread keeps its connection a minute.
# SQLite (the demo, a developer's machine) is a file opened in this process: nothing to save, so
# Django's default of closing it after each request stands.
_postgres = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
DATABASES["default"]["CONN_MAX_AGE"] = env.whole_number(
    "CONN_MAX_AGE", default=60 if _postgres else 0
)
if DATABASES["default"]["CONN_MAX_AGE"] < 0:
    raise ImproperlyConfigured("CONN_MAX_AGE must be 0 or more seconds.")
# A kept connection that a database restart or failover broke would fail the next request of
# every thread holding one (the "database unavailable" page) after the database is back; one
# `SELECT 1` before a kept connection's first query in a request costs far less.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = _postgres
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Several hosts must share one cache (Redis): the lookup rate limit lives there.
CACHES = {"default": env.shared_cache("CACHE_URL", default="locmemcache://")}
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="")
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # Django's, reusing its Redis client instead of building one per call (connvo_admin/cache.py).
    CACHES["default"]["BACKEND"] = "connvo_admin.cache.RedisCache"
    # A cache that stopped answering must not hold a request (and a worker thread) forever.
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": 2, "socket_timeout": 2}
    )
# Sessions are read from the shared cache and written through to the database, which every
# host already shares: no database query per request for the session, and a Redis outage signs
# nobody out (accounts/session_store.py).
SESSION_ENGINE = "accounts.session_store"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "meetings:lookup"
LOGOUT_REDIRECT_URL = "accounts:login"

# --- Sign-in --------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First, so that it refuses every sign-in (password or identity provider) from a locked-out
    # account or address before anything checks a credential.
    "axes.backends.AxesStandaloneBackend",
    # Django's, reading a person's permissions in one query (accounts/backends.py).
    "accounts.backends.ModelBackend",
    # Does nothing unless OIDC_RP_CLIENT_ID is set.
    "accounts.oidc.CompanyOIDCBackend",
]
# Failed sign-ins are counted in the database (shared by every host): SIGN_IN_FAILURE_LIMIT
# failures for one account from one address pause that account there, SIGN_IN_ADDRESS_FAILURE_LIMIT
# failures from one address (any accounts) pause the address, each for SIGN_IN_LOCKOUT_SECONDS.
# Never the account alone: anyone could then lock staff out (accounts/lockouts.py).
AXES_HANDLER = "accounts.lockouts.AccountAndAddressLockouts"
AXES_FAILURE_LIMIT = env.whole_number("SIGN_IN_FAILURE_LIMIT", default=5)
SIGN_IN_ADDRESS_FAILURE_LIMIT = env.whole_number("SIGN_IN_ADDRESS_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = timedelta(seconds=env.whole_number("SIGN_IN_LOCKOUT_SECONDS", default=15 * 60))
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME.total_seconds() < 1:
    raise ImproperlyConfigured(
        "SIGN_IN_FAILURE_LIMIT and SIGN_IN_LOCKOUT_SECONDS must be positive."
    )
if SIGN_IN_ADDRESS_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured(
        "SIGN_IN_ADDRESS_FAILURE_LIMIT must be at least SIGN_IN_FAILURE_LIMIT (one address may "
        "hold several people's attempts)."
    )
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# "Failed sign-ins in a row", as the pages say: a sign-in ends the account's run of failures from
# that address (its pair's count; the address's own count keeps everyone else's).
AXES_RESET_ON_SUCCESS = True
# The same client address as the audit log: X-Forwarded-For only from TRUSTED_PROXIES.
AXES_CLIENT_IP_CALLABLE = "connvo_admin.client_address.client_ip"
# The username tried, cut to axes' column and storable in any database (accounts/lockouts.py).
AXES_USERNAME_CALLABLE = "accounts.lockouts.attempted_username"
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
# Sign-ins and sign-outs are in the audit log already.
AXES_DISABLE_ACCESS_LOG = True
# No "AXES: BEGIN version …" line at every start of every command.
AXES_VERBOSE = False

# Sign-in through the company's identity provider (OpenID Connect), off unless configured.
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
# The `iss` every identity token must carry (the provider's issuer identifier).
OIDC_OP_ISSUER = env.str("OIDC_OP_ISSUER", default="")
# The provider's end-session endpoint, when it has one: signing out of the console then signs out
# there too.
OIDC_OP_LOGOUT_ENDPOINT = env.str("OIDC_OP_LOGOUT_ENDPOINT", default="")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
if OIDC_ENABLED:
    _missing = [
        name
        for name in (
            "OIDC_RP_CLIENT_SECRET",
            "OIDC_OP_AUTHORIZATION_ENDPOINT",
            "OIDC_OP_TOKEN_ENDPOINT",
            "OIDC_OP_USER_ENDPOINT",
            "OIDC_OP_JWKS_ENDPOINT",
            "OIDC_OP_ISSUER",
        )
        if not globals()[name]
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"OIDC_RP_CLIENT_ID is set, so sign-in through the identity provider also needs "
            f"{', '.join(_missing)}."
        )
# Shown on the sign-in button: "Sign in with <name>".
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="your company account")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc_callback"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/"
# Which claim names the console user, and which carries the person's groups.
OIDC_USERNAME_CLAIM = env.str("OIDC_USERNAME_CLAIM", default="preferred_username")
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
# Identity-provider groups that make a person a support agent, or an auditor. Someone in neither
# cannot sign in through the identity provider.
OIDC_SUPPORT_GROUPS = env.list("OIDC_SUPPORT_GROUPS", default=[])
OIDC_AUDITOR_GROUPS = env.list("OIDC_AUDITOR_GROUPS", default=[])

LANGUAGE_CODE = "en-gb"
# 24-hour times to the second (Django's admin shows "11:24 a.m." otherwise).
FORMAT_MODULE_PATH = ["connvo_admin.formats"]
# The fallback timezone for showing times; each agent's browser timezone wins when it is known.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security headers -----------------------------------------------------------------------
# htmx is configured (templates/base.html) so that it needs neither inline styles nor eval.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: htmx sends the token from the page (templates/base.html).
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# A refused form is written to the audit log like any other refusal.
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"
# In production mode (DEBUG off) cookies are HTTPS-only, plain HTTP is redirected to HTTPS and HSTS
# is sent, unless each is turned off by name for a plain-HTTP lab; the demo (DEBUG on) is plain
# http://127.0.0.1.
SESSION_COOKIE_SECURE = _strict_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = _strict_bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
# A sign-in lasts at most SESSION_COOKIE_AGE seconds however busy the agent is, and ends after
# SESSION_IDLE_TIMEOUT seconds without a request of theirs (accounts/middleware.py; the meeting
# page's live refresh is not the agent doing something).
SESSION_COOKIE_AGE = env.whole_number("SESSION_COOKIE_AGE", default=8 * 60 * 60)
SESSION_IDLE_TIMEOUT = env.whole_number("SESSION_IDLE_TIMEOUT", default=30 * 60)
if not 60 <= SESSION_IDLE_TIMEOUT <= SESSION_COOKIE_AGE:
    raise ImproperlyConfigured(
        "SESSION_IDLE_TIMEOUT must be at least 60 seconds and at most SESSION_COOKIE_AGE."
    )
SECURE_SSL_REDIRECT = _strict_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# An hour by default: long enough to protect, short enough to undo a mistake. Raise it (a year,
# 31536000) once HTTPS works on every host name (docs/deploy.md).
SECURE_HSTS_SECONDS = env.whole_number("SECURE_HSTS_SECONDS", default=0 if DEBUG else 3600)
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured("SECURE_HSTS_SECONDS must be 0 (off) or more.")
SECURE_HSTS_INCLUDE_SUBDOMAINS = _strict_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# An intranet host name can never be on the browsers' HSTS preload list, so `check --deploy`'s
# advice to send the preload directive does not apply.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The meeting index's extra columns (audit/models.py) are for PostgreSQL's index-only scans;
    # SQLite builds the same index without them, which is all the embedded default needs.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
if env.str("SECURE_PROXY_SSL_HEADER", default=""):
    # Only behind a proxy that sets (and so overwrites) this header on every request.
    _header, _, _value = env.str("SECURE_PROXY_SSL_HEADER").partition("=")
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip())
    if not SECURE_PROXY_SSL_HEADER[0].startswith("HTTP_") or not SECURE_PROXY_SSL_HEADER[1]:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must look like HTTP_X_FORWARDED_PROTO=https."
        )

# --- Connvo ---------------------------------------------------------------------------------
# name=url pairs; the URL of a lookup always comes from here, never from a request.
CONNVO_DEPLOYMENTS = env.deployments(
    "CONNVO_DEPLOYMENTS",
    default={
        "dev": "https://Connvo-dev.convex.cloud",
        "staging": "https://Connvo-staging.convex.cloud",
        "prod": "https://Connvo-prod.convex.cloud",
    },
)
CONNVO_DEFAULT_DEPLOYMENT = env.str("CONNVO_DEFAULT_DEPLOYMENT", default="dev")
# Deployments whose data is real customers' data: marked in the UI. By default `prod`, where
# there is one.
CONNVO_PRODUCTION_DEPLOYMENTS = env.list(
    "CONNVO_PRODUCTION_DEPLOYMENTS",
    default=[name for name in ["prod"] if name in CONNVO_DEPLOYMENTS],
)
CONNVO_CONNECT_TIMEOUT = _positive_float("CONNVO_CONNECT_TIMEOUT", default=3.05)
CONNVO_READ_TIMEOUT = _positive_float("CONNVO_READ_TIMEOUT", default=10.0)
CONNVO_RETRIES = env.whole_number("CONNVO_RETRIES", default=2)
CONNVO_RETRY_BACKOFF = _positive_float("CONNVO_RETRY_BACKOFF", default=0.25)
# Pushed answers (meetings/sync.py): Connvo's sync WebSocket sends at least a Ping every 15 s, so a
# connection that stays silent for twice that is dead (the page falls back to polling).
CONNVO_SYNC_SILENCE_TIMEOUT = _positive_float("CONNVO_SYNC_SILENCE_TIMEOUT", default=30.0)
if CONNVO_RETRIES < 0:
    raise ImproperlyConfigured("CONNVO_RETRIES must be 0 or more.")
if CONNVO_DEFAULT_DEPLOYMENT not in CONNVO_DEPLOYMENTS:
    raise ImproperlyConfigured(
        f"CONNVO_DEFAULT_DEPLOYMENT={CONNVO_DEFAULT_DEPLOYMENT!r} is not one of CONNVO_DEPLOYMENTS "
        f"({', '.join(CONNVO_DEPLOYMENTS)})."
    )
# Warn agents this long before their saved token expires.
CONNVO_TOKEN_EXPIRY_WARNING = env.whole_number("CONNVO_TOKEN_EXPIRY_WARNING", default=24 * 60 * 60)
# The meeting page refreshes its live status every CONNVO_POLL_INTERVAL seconds, backing off
# (doubling) up to CONNVO_POLL_MAX_INTERVAL while Connvo fails.
CONNVO_POLL_INTERVAL = env.whole_number("CONNVO_POLL_INTERVAL", default=10)
CONNVO_POLL_MAX_INTERVAL = env.whole_number("CONNVO_POLL_MAX_INTERVAL", default=300)
if not 1 <= CONNVO_POLL_INTERVAL <= CONNVO_POLL_MAX_INTERVAL:
    raise ImproperlyConfigured(
        "CONNVO_POLL_INTERVAL must be at least 1 and at most CONNVO_POLL_MAX_INTERVAL (seconds)."
    )
# Live values pushed, not polled (issue #24): an open meeting page subscribes to its meeting
# through Connvo's sync WebSocket and gets each change by Server-Sent Events from the push server
# (gunicorn-push.conf.py, under /live/), polling every CONNVO_POLL_INTERVAL only as the fallback.
# CONNVO_PUSH=false turns push off everywhere; CONNVO_POLLING_ONLY_DEPLOYMENTS lists deployments
# whose pages only poll (e.g. one whose sync WebSocket the network in between does not let through).
CONNVO_PUSH = _strict_bool("CONNVO_PUSH", default=True)
CONNVO_POLLING_ONLY_DEPLOYMENTS = env.list("CONNVO_POLLING_ONLY_DEPLOYMENTS", default=[])
# A name misspelt in either list would silently leave a deployment unmarked (no production
# stripe on real customers' meetings) or pushing where it must poll.
for _list in ("CONNVO_PRODUCTION_DEPLOYMENTS", "CONNVO_POLLING_ONLY_DEPLOYMENTS"):
    _unknown = set(globals()[_list]) - set(CONNVO_DEPLOYMENTS)
    if _unknown:
        raise ImproperlyConfigured(
            f"{_list} names deployments that are not in CONNVO_DEPLOYMENTS: "
            f"{', '.join(sorted(_unknown))}."
        )
# A comment line on every open push stream this often (seconds), so that nginx and other proxies
# in between never take a quiet stream for a dead one.
CONNVO_PUSH_HEARTBEAT = _positive_float("CONNVO_PUSH_HEARTBEAT", default=15.0)
# Threads (and so database connections, at most) per push worker for every stream's database work:
# the agent's token, and recording each pushed answer before it is sent (meetings/views/push.py);
# as many streams at a time may be opening (their session and user read: connvo_admin/asgi.py).
CONNVO_PUSH_DATABASE_THREADS = env.whole_number("CONNVO_PUSH_DATABASE_THREADS", default=4)
if not 1 <= CONNVO_PUSH_DATABASE_THREADS <= 64:
    raise ImproperlyConfigured("CONNVO_PUSH_DATABASE_THREADS must be between 1 and 64.")
# Where pushed answers are put on record (meetings/relay.py): the Unix socket of the host's push
# relay (`manage.py push_relay`, docs/deploy.md), which holds the Connvo WebSockets and records
# each answer on receipt, so that a push worker killed mid-stream loses none that is not on
# record. "" records them in the push worker itself (the demo; a killed worker may then lose the
# answers it had been sent and not yet recorded).
CONNVO_PUSH_RELAY = env.str("CONNVO_PUSH_RELAY", default="/run/connvo-console-relay/relay.sock")
if CONNVO_PUSH_RELAY and (
    not CONNVO_PUSH_RELAY.startswith("/") or len(CONNVO_PUSH_RELAY.encode()) > 107
):
    raise ImproperlyConfigured(
        "CONNVO_PUSH_RELAY must be the absolute path of a Unix socket (at most 107 bytes), or "
        "empty to record pushed answers in the push worker."
    )
# A live refresh that waited longer than this for a free thread (seconds) is answered at once
# with 503 + Retry-After, which the page honours, instead of late (connvo_admin/capacity.py).
LIVE_REFRESH_QUEUE_BUDGET = _positive_float("LIVE_REFRESH_QUEUE_BUDGET", default=0.5)
# Lookups one staff member may make per minute, all pages, refreshes and commands together
# (meetings/ratelimit.py), so a stuck script cannot hammer Connvo with someone's token. An open
# meeting page refreshes 60 / CONNVO_POLL_INTERVAL times a minute.
CONNVO_LOOKUPS_PER_MINUTE = env.whole_number("CONNVO_LOOKUPS_PER_MINUTE", default=60)
if CONNVO_LOOKUPS_PER_MINUTE < 1:
    raise ImproperlyConfigured("CONNVO_LOOKUPS_PER_MINUTE must be at least 1.")
# The triage table (many meetings at once): how many meetings one table may hold, and how many
# of its Connvo calls run at the same time (per request; the rest wait for a free slot).
CONNVO_TABLE_MAX_MEETINGS = env.whole_number("CONNVO_TABLE_MAX_MEETINGS", default=100)
CONNVO_TABLE_CONCURRENCY = env.whole_number("CONNVO_TABLE_CONCURRENCY", default=16)
# At most 150: a table's address holds its IDs (up to 37 characters and a comma each) and its
# live refresh adds each row's state: 150 such rows fit the 8,190 bytes that gunicorn
# (limit_request_line, its highest) and nginx (8 KB header buffers) read of a request line;
# beyond about 180 a table's address, or its refresh, would be refused after the lookup box
# had taken the paste.
if not 2 <= CONNVO_TABLE_MAX_MEETINGS <= 150:
    raise ImproperlyConfigured("CONNVO_TABLE_MAX_MEETINGS must be between 2 and 150.")
if not 1 <= CONNVO_TABLE_CONCURRENCY <= 64:
    raise ImproperlyConfigured("CONNVO_TABLE_CONCURRENCY must be between 1 and 64.")

# Fernet keys, comma-separated, newest first: the first encrypts, all decrypt (key rotation).
TOKEN_ENCRYPTION_KEYS = env.list(
    "TOKEN_ENCRYPTION_KEYS", default=[DEMO_TOKEN_ENCRYPTION_KEY] if DEBUG else []
)


def _workos_settings(deployment: str) -> dict[str, str] | None:
    """WorkOS AuthKit settings for one deployment: WORKOS_CLIENT_ID_<NAME>, WORKOS_API_KEY_<NAME>
    and WORKOS_BASE_URL_<NAME> (NAME upper-cased, "-" as "_"), else the unsuffixed variables."""
    suffix = "_" + deployment.upper().replace("-", "_")

    def read(name: str) -> str:
        return env.str(name + suffix, default="") or env.str(name, default="")

    client_id, api_key = read("WORKOS_CLIENT_ID"), read("WORKOS_API_KEY")
    if not client_id and not api_key:
        return None
    if not (client_id and api_key):
        raise ImproperlyConfigured(
            f"WorkOS for the {deployment} deployment needs both WORKOS_CLIENT_ID{suffix} and "
            f"WORKOS_API_KEY{suffix} (or the unsuffixed variables)."
        )
    return {"client_id": client_id, "api_key": api_key, "base_url": read("WORKOS_BASE_URL")}


# Deployments whose agents connect their Connvo account through WorkOS AuthKit (short-lived
# access tokens, refreshed by the console) instead of pasting a token.
CONNVO_WORKOS = {
    name: config for name in CONNVO_DEPLOYMENTS if (config := _workos_settings(name)) is not None
}
# Refresh an access token this many seconds before it expires.
CONNVO_REFRESH_MARGIN = env.whole_number("CONNVO_REFRESH_MARGIN", default=60)
WORKOS_TIMEOUT = env.whole_number("WORKOS_TIMEOUT", default=10)

# The proxies believed about a request: its client address (X-Forwarded-For: the audit log, the
# request log, sign-in lockouts; connvo_admin/client_address.py) and its id (X-Request-ID) here, and
# its scheme (X-Forwarded-Proto) in gunicorn, whose forwarded_allow_ips is this list
# (connvo_admin/gunicorn_config.py). In production mode nginx on the same host by default, as
# docs/deploy.md deploys it on every host: otherwise every client would have nginx's address, and
# one client's failed sign-ins would lock everyone out. The demo has no proxy.
TRUSTED_PROXIES = env.addresses("TRUSTED_PROXIES", default=[] if DEBUG else ["127.0.0.1", "::1"])

# --- Logging --------------------------------------------------------------------------------
# One JSON object per line on stderr, each with the request's id (connvo_admin/logs.py); gunicorn's
# own lines use the same format. Nothing logs a token, a cookie or an Authorization header.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "connvo_admin.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Audit ----------------------------------------------------------------------------------
# Keys the HMAC chain over the audit log (audit/chain.py): comma-separated, the key to use next
# first, then every earlier key the chain was written under (rotation: docs/deploy.md). Whoever
# holds a key can forge entries that verify, so keep them out of the database's reach: set them
# only in the web and command environments. Removing a key makes the entries written under it
# fail `manage.py audit_verify` until they are purged.
AUDIT_CHAIN_KEYS = env.list("AUDIT_CHAIN_KEY", default=[DEMO_AUDIT_CHAIN_KEY])
if not AUDIT_CHAIN_KEYS or any(len(key) < 32 for key in AUDIT_CHAIN_KEYS):
    raise ImproperlyConfigured("Every AUDIT_CHAIN_KEY key must be at least 32 characters long.")
if len(set(AUDIT_CHAIN_KEYS)) != len(AUDIT_CHAIN_KEYS):
    raise ImproperlyConfigured("AUDIT_CHAIN_KEY names the same key twice.")
# `audit_purge` never deletes entries younger than this, and `audit_verify` flags a purge entry
# that did (someone ran the purge with a shorter retention to hide recent entries).
AUDIT_MIN_RETENTION_DAYS = env.whole_number("AUDIT_MIN_RETENTION_DAYS", default=90)
if AUDIT_MIN_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("AUDIT_MIN_RETENTION_DAYS must be at least 1.")
# How often `audit_checkpoint` runs (a systemd timer or cron, docs/deploy.md): the audit pages
# warn when the newest checkpoint is more than twice this old.
AUDIT_CHECKPOINT_INTERVAL = env.whole_number("AUDIT_CHECKPOINT_INTERVAL", default=300)
if AUDIT_CHECKPOINT_INTERVAL < 10:
    raise ImproperlyConfigured("AUDIT_CHECKPOINT_INTERVAL must be at least 10 seconds.")
# An open page's live refreshes are counted in a span and sealed into the chain at least this
# often while the page stays open (audit/spans.py): at most this long of a page's calls are ever
# outside the chain. Shorter means more chained entries per page-hour (one per seal, ~1.2 KB on
# PostgreSQL): ten minutes keeps a page-hour within 10 KB (docs/performance.md, "Audit log at
# load").
AUDIT_SPAN_SEAL_EVERY = env.whole_number("AUDIT_SPAN_SEAL_EVERY", default=600)
if not 10 <= AUDIT_SPAN_SEAL_EVERY <= 3600:
    raise ImproperlyConfigured("AUDIT_SPAN_SEAL_EVERY must be between 10 and 3600 seconds.")
# Also append every checkpoint to this file (make it append-only: `chattr +a`), besides the log.
AUDIT_CHECKPOINT_FILE = env.str("AUDIT_CHECKPOINT_FILE", default="")
if re.search(r"\s#", AUDIT_CHECKPOINT_FILE):
    # An environment file keeps a comment on the value's line as part of it: the checkpoints
    # would silently go to a file named after the comment.
    raise ImproperlyConfigured(
        "AUDIT_CHECKPOINT_FILE has a comment after the path: put comments on lines of their own."
    )
# Entries per page on the audit pages.
AUDIT_PAGE_SIZE = env.whole_number("AUDIT_PAGE_SIZE", default=50)
if not 10 <= AUDIT_PAGE_SIZE <= 500:
    raise ImproperlyConfigured("AUDIT_PAGE_SIZE must be between 10 and 500.")
# The audit pages warn when the last `audit_verify` run is older than this many hours.
AUDIT_VERIFY_WARN_AFTER_HOURS = env.whole_number("AUDIT_VERIFY_WARN_AFTER_HOURS", default=26)
# "Worth a look" on the audit log and `manage.py audit_insights` (audit/insights.py). A staff
# member is flagged when, in the window looked at (default: the last 24 hours):
# - they made at least AUDIT_FLAG_MIN_LOOKUPS lookups and AUDIT_FLAG_VOLUME_FACTOR times what their
#   own previous AUDIT_FLAG_BASELINE_DAYS days would predict for a window that long;
# - at least AUDIT_FLAG_NOT_VISIBLE_SHARE of their lookups (AUDIT_FLAG_NOT_VISIBLE_MIN or more)
#   were of meetings they are not a participant of;
# - they looked up AUDIT_FLAG_MEETINGS_PER_HOUR or more distinct meetings within one hour;
# - they made AUDIT_FLAG_OFF_HOURS_MIN or more lookups at hours of the day (UTC) at which they made
#   none in the baseline days, which held at least AUDIT_FLAG_OFF_HOURS_MIN_BASELINE lookups.
AUDIT_FLAG_BASELINE_DAYS = env.whole_number("AUDIT_FLAG_BASELINE_DAYS", default=30)
AUDIT_FLAG_MIN_LOOKUPS = env.whole_number("AUDIT_FLAG_MIN_LOOKUPS", default=50)
AUDIT_FLAG_VOLUME_FACTOR = env.decimal_number("AUDIT_FLAG_VOLUME_FACTOR", default=5.0)
AUDIT_FLAG_NOT_VISIBLE_SHARE = env.decimal_number("AUDIT_FLAG_NOT_VISIBLE_SHARE", default=0.5)
AUDIT_FLAG_NOT_VISIBLE_MIN = env.whole_number("AUDIT_FLAG_NOT_VISIBLE_MIN", default=20)
AUDIT_FLAG_MEETINGS_PER_HOUR = env.whole_number("AUDIT_FLAG_MEETINGS_PER_HOUR", default=30)
AUDIT_FLAG_OFF_HOURS_MIN = env.whole_number("AUDIT_FLAG_OFF_HOURS_MIN", default=5)
AUDIT_FLAG_OFF_HOURS_MIN_BASELINE = env.whole_number(
    "AUDIT_FLAG_OFF_HOURS_MIN_BASELINE", default=100
)
for _name in (
    "AUDIT_FLAG_BASELINE_DAYS",
    "AUDIT_FLAG_MIN_LOOKUPS",
    "AUDIT_FLAG_MEETINGS_PER_HOUR",
    "AUDIT_FLAG_OFF_HOURS_MIN",
    "AUDIT_FLAG_OFF_HOURS_MIN_BASELINE",
    "AUDIT_FLAG_NOT_VISIBLE_MIN",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
if AUDIT_FLAG_VOLUME_FACTOR <= 1:
    raise ImproperlyConfigured("AUDIT_FLAG_VOLUME_FACTOR must be more than 1.")
if not 0 < AUDIT_FLAG_NOT_VISIBLE_SHARE <= 1:
    raise ImproperlyConfigured("AUDIT_FLAG_NOT_VISIBLE_SHARE must be above 0 and at most 1.")

# --- Production mode refuses the demo secrets ------------------------------------------------
# Here, not only in gunicorn.conf.py: any WSGI server (gunicorn without our config, uWSGI,
# mod_wsgi) loads these settings, and none may serve with a key published in this repository.
if not DEBUG and (
    _secret_problems := find_secret_problems(
        secret_key=SECRET_KEY,
        secret_key_fallbacks=SECRET_KEY_FALLBACKS,
        token_encryption_keys=TOKEN_ENCRYPTION_KEYS,
        audit_chain_keys=AUDIT_CHAIN_KEYS,
    )
):
    raise ImproperlyConfigured(
        refusal(_secret_problems) + " Only a developer's machine (DEBUG=true) uses demo secrets."
    )
