"""Settings for the demo project, read from the environment (django-environ)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import django
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# A development key only when DEBUG is on. It is public (it is in this file), so
# outside DEBUG it would let anyone forge sessions, CSRF tokens and reset links.
dev_only_secret_key = "django-insecure-dev-only-key-do-not-use-in-production"
SECRET_KEY = env("SECRET_KEY", default=dev_only_secret_key if DEBUG else "")
if not DEBUG and not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: with DEBUG off, set the SECRET_KEY environment variable to a"
        " long random value, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
if not DEBUG and SECRET_KEY == dev_only_secret_key:
    raise ImproperlyConfigured(
        "SECRET_KEY is the public development key: with DEBUG off, set the SECRET_KEY"
        " environment variable to a long random value of your own."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "progress.web.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "progress",
    "workers",
    # A second app built on progress's public API only (docs/integrating.md).
    "statements",
    "tasks_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tasks_site.urls"
ASGI_APPLICATION = "tasks_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the workers write at once: WAL (set once, after migrate,
    # by tasks_site/apps.py: the file keeps it) and immediate transactions turn
    # "database is locked" into a short wait.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_REDIRECT_URL = "progress:dashboard"
LOGOUT_REDIRECT_URL = "login"

# Where the progress app is mounted: "" (the default) makes it the site, "tools/progress/"
# puts it beside the host's own pages, as in a project that has its own "/" (tasks_site/urls.py).
MOUNT_PROGRESS_AT = env("MOUNT_PROGRESS_AT", default="")
if MOUNT_PROGRESS_AT and (MOUNT_PROGRESS_AT.startswith("/") or not MOUNT_PROGRESS_AT.endswith("/")):
    raise ImproperlyConfigured(
        f"MOUNT_PROGRESS_AT={MOUNT_PROGRESS_AT!r}: a path without a leading slash and with a "
        "trailing one, such as 'tools/progress/', or empty."
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "/media/"
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Production behind TLS turns these on (compose/docker-compose.yml); off by default
# because development and the tests serve plain http, where secure cookies, HTTPS
# redirects and HSTS would lock the browser out.
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# CSRF_COOKIE_HTTPONLY stays False: progress/static/progress/api.js reads csrftoken.
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
# Behind a TLS proxy this needs TRUST_X_FORWARDED_PROTO, or every request looks like
# http and redirects forever. No URL is exempt: the project has no health-check view,
# and the compose healthcheck sends X-Forwarded-Proto itself.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
if SECURE_HSTS_SECONDS > 0:
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # Browsers' preload lists take only a registrable domain that serves this header
    # itself, so on a subdomain (progress.example.com) the directive is inert; on an
    # apex domain whose other subdomains are not all HTTPS, set SECURE_HSTS_PRELOAD=0.
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)


def next_redis_db(url: str) -> str:
    """The same Redis server as `url`, on the next database number."""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit((parts.scheme, parts.netloc, f"/{(db + 1) % 16}", parts.query, ""))


# One Redis server, two databases: the channel layer and job states in one,
# the Celery broker in another, so neither can flush or crowd out the other.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")


def sentinel_address(entry: str) -> tuple[str, int]:
    """A "host:port" of REDIS_SENTINELS as the (host, port) redis-py takes."""
    host, _, port = entry.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ImproperlyConfigured(f"REDIS_SENTINELS takes host:port entries, not {entry!r}.")
    return host, int(port)


# With Redis Sentinel (docs/scaling-notes.md) every client asks the sentinels for
# the current primary of REDIS_SENTINEL_MASTER, so a failover moves them all; REDIS_URL
# then gives only the database number and the primary's password, not its address.
REDIS_SENTINELS = [sentinel_address(entry) for entry in env.list("REDIS_SENTINELS", default=[])]
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
# Sentinels may have a password of their own (`requirepass` in sentinel.conf).
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
if REDIS_SENTINELS and not REDIS_SENTINEL_MASTER:
    raise ImproperlyConfigured("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not.")
_redis_parts = urlsplit(REDIS_URL)
REDIS_DB = int(_redis_parts.path.strip("/") or 0)
# How every client here talks to the sentinels themselves; without timeouts of its
# own, asking a dead sentinel would wait 30 s.
SENTINEL_KWARGS: dict[str, object] = {"socket_timeout": 2, "socket_connect_timeout": 2}
if REDIS_SENTINEL_PASSWORD:
    SENTINEL_KWARGS["password"] = REDIS_SENTINEL_PASSWORD


def layer_host() -> dict[str, object]:
    """The channel layer's one host: REDIS_URL, or the primary the sentinels name."""
    # channels-redis blocks for 5 s per read while waiting for messages; redis-py
    # 8's default 5 s socket timeout would cut that read and drop every socket
    # idle for 5 s.
    if not REDIS_SENTINELS:
        return {"address": REDIS_URL, "socket_timeout": 30}
    host: dict[str, object] = {
        "sentinels": REDIS_SENTINELS,
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": SENTINEL_KWARGS,
        "db": REDIS_DB,
        "socket_timeout": 30,
    }
    if _redis_parts.username:
        host["username"] = unquote(_redis_parts.username)
    if _redis_parts.password:
        host["password"] = unquote(_redis_parts.password)
    return host


# Each web process holds one channel of its own (progress/web/hub.py), so the
# layer carries one message per process and group, never one per socket.
# "redis" is channels-redis' core layer, "pubsub" its RedisPubSubChannelLayer;
# bench/fanout.py measures both.
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="redis")
if CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [layer_host()]},
        }
    }
elif CHANNEL_LAYER == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [layer_host()],
                # One channel per web process takes every state of its
                # sockets' jobs: the default of 100 would drop whole group
                # messages under a burst of many jobs.
                "capacity": 10000,
                "expiry": 60,
            },
        }
    }
else:
    raise ImproperlyConfigured(f"CHANNEL_LAYER must be 'redis' or 'pubsub', not {CHANNEL_LAYER!r}.")

if REDIS_SENTINELS:
    # kombu's Sentinel transport: one sentinel:// URL per sentinel, joined by ";";
    # the first URL's path is the broker's database, the next after REDIS_URL's.
    _userinfo = _redis_parts.netloc.rpartition("@")[0]
    _broker_auth = f"{_userinfo}@" if _userinfo else ""
    _broker_db = (REDIS_DB + 1) % 16
    _default_broker = ";".join(
        f"sentinel://{_broker_auth}{host}:{port}/{_broker_db}" for host, port in REDIS_SENTINELS
    )
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": SENTINEL_KWARGS,
    }
else:
    _default_broker = next_redis_db(REDIS_URL)
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=_default_broker)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Job results live on the Job row; nothing needs Celery's result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_TIMEZONE = TIME_ZONE
# celery beat (Procfile, compose) purges finished jobs past PROGRESS["RETENTION"], and
# sweeps for jobs whose worker was lost every WORKER_LOST_AFTER / 3 (15 s by default).
CELERY_BEAT_SCHEDULE = {
    "progress-purge-finished": {"task": "progress.purge_finished", "schedule": 3600.0},
    "progress-sweep-lost-jobs": {"task": "progress.sweep_lost_jobs", "schedule": 5.0},
}

# The statements app mails its users: to the console in DEBUG, else over SMTP (EMAIL_HOST),
# unless EMAIL_BACKEND says otherwise; Django 6.1's check --deploy refuses the console in
# production. The same environment variables on every Django: from 6.1 as MAILERS, whose
# backends refuse options they do not take, before as the EMAIL_* settings 6.1 deprecates.
_MAIL_BACKEND = env(
    "EMAIL_BACKEND",
    default="django.core.mail.backends."
    + ("console.EmailBackend" if DEBUG else "smtp.EmailBackend"),
)
_MAIL_OPTIONS: dict[str, object] = {}
if _MAIL_BACKEND.endswith(".filebased.EmailBackend"):
    _MAIL_OPTIONS["file_path"] = env("EMAIL_FILE_PATH", default=str(BASE_DIR / "run" / "mail"))
elif _MAIL_BACKEND.endswith(".smtp.EmailBackend"):
    _MAIL_OPTIONS.update(
        host=env("EMAIL_HOST", default="localhost"), port=env.int("EMAIL_PORT", default=25)
    )
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": _MAIL_BACKEND, "OPTIONS": _MAIL_OPTIONS}}
else:
    EMAIL_BACKEND = _MAIL_BACKEND
    EMAIL_FILE_PATH = _MAIL_OPTIONS.get("file_path")
    EMAIL_HOST = _MAIL_OPTIONS.get("host", "localhost")
    EMAIL_PORT = _MAIL_OPTIONS.get("port", 25)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="progress@localhost")

PROGRESS = {
    "REDIS_URL": REDIS_URL,
    "REDIS_SENTINELS": REDIS_SENTINELS,
    "REDIS_SENTINEL_MASTER": REDIS_SENTINEL_MASTER,
    "REDIS_SENTINEL_KWARGS": SENTINEL_KWARGS,
    "MAX_RUNNING_JOBS": env.int("PROGRESS_MAX_RUNNING_JOBS", default=0),
    "MAX_SOCKETS": env.int("PROGRESS_MAX_SOCKETS", default=0),
    "MAX_LAUNCHES_PER_MINUTE": env.int("PROGRESS_MAX_LAUNCHES_PER_MINUTE", default=0),
    "THROTTLE": env.float("PROGRESS_THROTTLE", default=0.1),
    "RETENTION": env.float("PROGRESS_RETENTION", default=30 * 24 * 3600),
    "METRICS_TOKEN": env("PROGRESS_METRICS_TOKEN", default=""),
    # The app's pages inside the demo's layout (templates/base.html), as a host's would be.
    "BASE_TEMPLATE": "base.html",
}

# LOG_FORMAT=json writes one JSON object per line (progress/jsonlog.py), with the
# job_id and user_id of the job a line is about; plain is for people at a terminal.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "progress.jsonlog.JsonFormatter"},
    },
    "filters": {"job_context": {"()": "progress.jsonlog.JobContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["job_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
# Celery replaces the root logger's handlers with its own plain ones unless told not
# to; JSON lines must come out of workers too, where the job context is.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT == "plain"
