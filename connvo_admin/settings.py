"""Settings for the Connvo Support Console.

Every value comes from the environment (or an optional `.env` file) through django-environ. The
defaults run the embedded demo on one machine (SQLite, local-memory cache); production values are
listed in `.env.example` and the README.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
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
    value = env.float(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, not {value}.")
    return value


# Demo values: fine for `make demo` and the tests, refused by `manage.py check --deploy` and by
# gunicorn (see connvo_admin/checks.py) so they can never reach production unnoticed.
DEMO_SECRET_KEY = "demo-insecure-secret-key-do-not-use-in-production"
DEMO_TOKEN_ENCRYPTION_KEY = "ZGVtby1pbnNlY3VyZS1mZXJuZXQta2V5LTMyYnl0ZXM="

DEBUG = _strict_bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEMO_SECRET_KEY)
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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "meetings.middleware.BrowserTimezoneMiddleware",
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let gunicorn's threads write audit rows without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "meetings:lookup"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-gb"
# The fallback timezone for showing times; each agent's browser timezone wins when it is known.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
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
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Off by default only because the embedded demo is plain http://127.0.0.1; turn on behind TLS.
SESSION_COOKIE_SECURE = _strict_bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = _strict_bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 60 * 60)
SECURE_SSL_REDIRECT = _strict_bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
if env.str("SECURE_PROXY_SSL_HEADER", default=""):
    _header, _, _value = env.str("SECURE_PROXY_SSL_HEADER").partition("=")
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip())

# --- Connvo ---------------------------------------------------------------------------------
# name=url pairs; the URL of a lookup always comes from here, never from a request.
CONNVO_DEPLOYMENTS = env.dict(
    "CONNVO_DEPLOYMENTS",
    default={
        "dev": "https://Connvo-dev.convex.cloud",
        "staging": "https://Connvo-staging.convex.cloud",
        "prod": "https://Connvo-prod.convex.cloud",
    },
)
CONNVO_DEFAULT_DEPLOYMENT = env.str("CONNVO_DEFAULT_DEPLOYMENT", default="dev")
# Deployments whose data is real customers' data: marked in the UI.
CONNVO_PRODUCTION_DEPLOYMENTS = env.list("CONNVO_PRODUCTION_DEPLOYMENTS", default=["prod"])
CONNVO_CONNECT_TIMEOUT = _positive_float("CONNVO_CONNECT_TIMEOUT", default=3.05)
CONNVO_READ_TIMEOUT = _positive_float("CONNVO_READ_TIMEOUT", default=10.0)
CONNVO_RETRIES = env.int("CONNVO_RETRIES", default=2)
CONNVO_RETRY_BACKOFF = _positive_float("CONNVO_RETRY_BACKOFF", default=0.25)
if CONNVO_RETRIES < 0:
    raise ImproperlyConfigured("CONNVO_RETRIES must be 0 or more.")
if CONNVO_DEFAULT_DEPLOYMENT not in CONNVO_DEPLOYMENTS:
    raise ImproperlyConfigured(
        f"CONNVO_DEFAULT_DEPLOYMENT={CONNVO_DEFAULT_DEPLOYMENT!r} is not one of CONNVO_DEPLOYMENTS "
        f"({', '.join(CONNVO_DEPLOYMENTS)})."
    )
# Warn agents this long before their saved token expires.
CONNVO_TOKEN_EXPIRY_WARNING = env.int("CONNVO_TOKEN_EXPIRY_WARNING", default=24 * 60 * 60)
# The meeting page refreshes its live status every CONNVO_POLL_INTERVAL seconds, backing off
# (doubling) up to CONNVO_POLL_MAX_INTERVAL while Connvo fails.
CONNVO_POLL_INTERVAL = env.int("CONNVO_POLL_INTERVAL", default=10)
CONNVO_POLL_MAX_INTERVAL = env.int("CONNVO_POLL_MAX_INTERVAL", default=300)
if not 1 <= CONNVO_POLL_INTERVAL <= CONNVO_POLL_MAX_INTERVAL:
    raise ImproperlyConfigured(
        "CONNVO_POLL_INTERVAL must be at least 1 and at most CONNVO_POLL_MAX_INTERVAL (seconds)."
    )

# Fernet keys, comma-separated, newest first: the first encrypts, all decrypt (key rotation).
TOKEN_ENCRYPTION_KEYS = env.list("TOKEN_ENCRYPTION_KEYS", default=[DEMO_TOKEN_ENCRYPTION_KEY])


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
CONNVO_REFRESH_MARGIN = env.int("CONNVO_REFRESH_MARGIN", default=60)
WORKOS_TIMEOUT = env.int("WORKOS_TIMEOUT", default=10)

# The client address recorded in the audit log: REMOTE_ADDR, unless the request came through one
# of these proxies, in which case the address the proxy saw (X-Forwarded-For) is used.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
