"""Settings for both services, read from the environment once, here.

One project, two services: ``SERVICES`` picks which URLs a process serves (``users``,
``orders`` or both), so the Users and Orders processes run the same code on two ports.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from project.env import env_bool, env_float, env_int, env_list, env_str, upstream_settings
from project.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

#: Development settings (Django's DEBUG); `make run` and `manage.py` turn it on.
DEBUG = env_bool("DJANGO_DEBUG", False)
#: Required in production (DJANGO_DEBUG off): Django's SECRET_KEY.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required with production settings (DJANGO_DEBUG off); "
            "for development use `make run`, or DJANGO_DEBUG=1"
        )
    SECRET_KEY = "django-insecure-development-only"  # noqa: S105 - DEBUG only
#: Comma-separated host names this service answers to (Django's ALLOWED_HOSTS).
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

# HTTPS. TLS ends at the load balancer; calls between the services are plain HTTP inside
# the network, so redirecting HTTP to HTTPS here would break Orders -> Users. HSTS is only
# sent on HTTPS responses, so it is safe to default on.

#: Redirect HTTP to HTTPS: only where every caller, Orders included, speaks HTTPS.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
#: HSTS max-age in seconds (production: a year; sent on HTTPS responses only).
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = False  # preloading is a domain-wide decision, not a service's
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
#: Trust X-Forwarded-Proto (only behind a proxy that sets it).
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SILENCED_SYSTEM_CHECKS = [] if SECURE_SSL_REDIRECT else ["security.W008"]  # see above
SILENCED_SYSTEM_CHECKS += ["security.W021"]  # HSTS preload: see SECURE_HSTS_PRELOAD

#: Which service(s) this process is: "users", "orders", or both (the default, for tests).
SERVICES = env_list("SERVICES", ["users", "orders"])
_unknown = set(SERVICES) - {"users", "orders"}
if _unknown:
    raise ImproperlyConfigured(f"SERVICES: unknown service(s) {sorted(_unknown)}")

#: simulate_outage works only where this is on: development by default, never by accident.
OUTAGE_SIMULATION = env_bool("OUTAGE_SIMULATION", DEBUG)
#: The largest request body either service takes (the front server's cap is the same):
#: larger is a 413 before it is read (project/limits.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024)

#: Users replicas ``make run USERS_REPLICAS=N`` started (the page offers a fault per replica).
USERS_REPLICAS = env_int("USERS_REPLICAS", 1)
#: Which replica this Users process is (its simulated faults: its own, else those for all).
USERS_REPLICA = env_int("USERS_REPLICA", 1)
for _name, _value in (("USERS_REPLICAS", USERS_REPLICAS), ("USERS_REPLICA", USERS_REPLICA)):
    if not 1 <= _value <= 99:
        raise ImproperlyConfigured(f"{_name} must be 1..99; got {_value}")

#: Seconds an Idempotency-Key of POST /orders/ is remembered (IETF draft: "expiry").
IDEMPOTENCY_KEY_TTL = env_float("IDEMPOTENCY_KEY_TTL", 24 * 3600.0)

#: Upstreams Orders calls; each dict is the keyword arguments of an ``UpstreamConfig``.
UPSTREAMS = {"users": upstream_settings("USERS", base_url="http://127.0.0.1:8200")}

#: Seconds after which a key still "in progress" is taken to be a crashed request's and is
#: reclaimed by the next request with it. Above the longest an Orders request may run: the
#: Users deadline, plus room for the database writes.
IDEMPOTENCY_LOCK_TIMEOUT = env_float(
    "IDEMPOTENCY_LOCK_TIMEOUT", float(UPSTREAMS["users"]["deadline"]) + 5.0
)
if IDEMPOTENCY_LOCK_TIMEOUT <= 0:
    raise ImproperlyConfigured(
        f"IDEMPOTENCY_LOCK_TIMEOUT must be > 0 seconds; got {IDEMPOTENCY_LOCK_TIMEOUT}"
    )
if IDEMPOTENCY_KEY_TTL <= IDEMPOTENCY_LOCK_TIMEOUT:
    raise ImproperlyConfigured(
        f"IDEMPOTENCY_KEY_TTL ({IDEMPOTENCY_KEY_TTL:g} s) must exceed IDEMPOTENCY_LOCK_TIMEOUT "
        f"({IDEMPOTENCY_LOCK_TIMEOUT:g} s): a key must outlive the request that claimed it"
    )

INSTALLED_APPS = [
    "project",  # before staticfiles: its runserver (TCP_NODELAY) must win
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally: no CDN at run time
    "users",
    "orders",
    "resilient_http",  # the resilient client: system checks, its JSON state view
    "dashboard",  # the live resilience page (served where Orders is)
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "resilient_http.request_id.RequestIdMiddleware",
    "project.limits.RequestLimitsMiddleware",  # before anything reads the body or query
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # the admin's CSS under gunicorn
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Innermost: a simulated fault stands in for the service itself failing, so every
    # other layer (request IDs, metrics, logs) sees it as it would see a real one.
    "users.middleware.SimulatedOutageMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Two server processes and the simulate_outage command share the file: WAL lets
    # readers run beside a writer, and IMMEDIATE + a busy timeout queue writers politely.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["project.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "resilient_http.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": f"{' and '.join(s.capitalize() for s in SERVICES)} service",
    "DESCRIPTION": "Resilient service-to-service calls in Django: see the project README.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # /orders/ is one view per method behind a dispatcher: each method's view documents it.
    "PREPROCESSING_HOOKS": ["project.dispatch.preprocess_method_dispatch"],
}

#: RFC 9457 ``type`` of our problems is this prefix + the stable ``code``; a ``tag:`` URI
#: names the problem without promising a page to fetch.
PROBLEM_TYPE_BASE = env_str("PROBLEM_TYPE_BASE", "tag:resilient-django,2026:problem:")

#: OpenTelemetry's SDK, set up from the standard OTEL_* variables (project/telemetry.py);
#: OTEL_SDK_DISABLED=true turns it off. The tests install their own in-memory one.
OPENTELEMETRY = True

#: "text" (the tutorial's lines, with the request ID) or "json" (one object a line).
LOG_FORMAT = env_str("LOG_FORMAT", "text")
#: The lowest level logged: DEBUG, INFO, WARNING, ERROR.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
try:
    LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
