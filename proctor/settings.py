"""The one settings module. Every value comes from the environment.

Without DATABASE_URL and REDIS_URL the app runs in embedded single-machine
mode: SQLite, the in-memory channel layer, and frame analysis in a thread pool
inside the web process. With both set it uses PostgreSQL, channels-redis and a
separate Celery worker. `.env.example` lists every variable.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from proctor.env import database_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR") or BASE_DIR / "var")

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
EMBEDDED = not (DATABASE_URL and REDIS_URL)

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if DATABASE_URL:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set; it is required when DATABASE_URL is set: put one in .env, e.g. "
            "SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    # Embedded mode: generate once and keep it, so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "exams",
    # Deletes a FileField's file after commit when its row is deleted (cascades
    # included) or the field is replaced; last, as its documentation asks.
    "django_cleanup.apps.CleanupConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "proctor.urls"
ASGI_APPLICATION = "proctor.asgi.application"

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

if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
    # Under ASGI every request runs in a thread of its own, and a persistent
    # connection belongs to its thread: 200 candidates arriving together opened
    # as many connections and PostgreSQL (max_connections=100) answered "too many
    # clients already". A pool per process (psycopg_pool, Django 5.1+) bounds
    # them and hands a finished request's connection to the next; a request
    # waits up to DB_POOL_TIMEOUT for one. Each daphne, each Celery worker child
    # and beat keep their own pool: processes x DB_POOL_MAX_SIZE must stay below
    # PostgreSQL's max_connections.
    if env_bool("DB_POOL", True):
        _pool = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1),
            "max_size": env_int("DB_POOL_MAX_SIZE", 10, minimum=1),
            "timeout": env_int("DB_POOL_TIMEOUT", 30, minimum=1),
            "max_idle": 300,  # gives back connections idle this long, down to min_size
        }
        if _pool["min_size"] > _pool["max_size"]:
            raise ImproperlyConfigured("DB_POOL_MIN_SIZE must not be larger than DB_POOL_MAX_SIZE")
        # The pool keeps the connections; Django must not (it refuses both at once).
        DATABASES["default"].update(CONN_MAX_AGE=0, OPTIONS={"pool": _pool})
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # WAL lets readers run beside the one writer. IMMEDIATE takes the write
            # lock when a transaction begins, so two transactions that read and then
            # write queue for up to `timeout` seconds instead of failing with
            # "database is locked" when the second tries to upgrade its read lock.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # capacity: messages waiting per channel before group_send drops new ones.
            # A proctor's channel receives every candidate's updates; the default
            # 100 dropped updates at 50 candidates while daphne was busy.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "proctor", "capacity": 1000},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "proctor",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: only used when REDIS_URL is set; embedded mode analyses in-process.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = EMBEDDED
CELERY_TASK_IGNORE_RESULT = True
# Autodiscovery finds exams.tasks; the live-analysis tasks live one level down.
CELERY_IMPORTS = ("exams.analysis.tasks",)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep database connections across tasks (proctor/celery.py closes them the
# Django way instead): Celery's fixup force-closes only every 2 x this many tasks.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Every task has a time limit. Analysis of one frame takes well under a
# second (docs/performance.md); SoftTimeLimitExceeded lets a stuck one give
# its session's queue slot back before the hard limit kills the process.
# (The first frame of a worker also loads the models: seconds, not a minute.)
# The purge sets its own, longer limits.
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
# Housekeeping has its own queue, so a backlog of frames never delays it; a
# worker consumes both (Makefile, bin/run, docker-compose.yml).
CELERY_TASK_DEFAULT_QUEUE = "celery"
HOUSEKEEPING_QUEUE = "housekeeping"
CELERY_TASK_ROUTES = {"exams.tasks.*": {"queue": HOUSEKEEPING_QUEUE}}
# Each entry expires after its own period: a late run is dropped, the next does the same work.
CELERY_BEAT_SCHEDULE = {
    "purge-expired-evidence": {
        "task": "exams.tasks.purge_expired",
        "schedule": 3600.0,
        "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 3600},
    },
    "close-stale-connections": {
        "task": "exams.tasks.mark_stale_connections",
        "schedule": 30.0,
        "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 30},
    },
    "submit-overdue-exams": {
        "task": "exams.tasks.submit_overdue",
        "schedule": 30.0,
        "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 30},
    },
    "flag-silent-cameras": {
        "task": "exams.tasks.flag_silent_cameras",
        "schedule": 5.0,
        "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 5},
    },
}

_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {"NAME": f"{_VALIDATORS}.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username and address is refused before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT") or VAR_DIR / "static")
# Static files are served by WhiteNoise from daphne itself; finders let
# `make run` work without a collectstatic step.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or VAR_DIR / "media")
# Media holds biometric data; it is never served publicly, only through views
# that check access. There is deliberately no MEDIA_URL route.
# Files 0600 in 0700 folders, named by a random id (exams/storage.py).
STORAGES = {
    "default": {"BACKEND": "exams.storage.PrivateFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# The site's origin as users reach it (scheme://host[:port], no path: a
# FORCE_SCRIPT_NAME prefix is added by reverse()), for absolute links where there
# is no request to take the host from: invitation emails and links (admin page,
# import_roster) and the CSV evidence links of `export_report`. Empty = pages use
# the request's own host, commands print paths, and invitation emails are not
# sent (an email cannot carry a link relative to nothing).
SITE_URL = env_str("SITE_URL").rstrip("/")
if SITE_URL and not re.fullmatch(r"https?://[^/\s?#]+", SITE_URL):
    raise ImproperlyConfigured(f"SITE_URL must be scheme://host[:port] without a path, not {SITE_URL!r}")

# Secure by default on a server (DATABASE_URL set, like the SECRET_KEY rule above):
# HTTPS only, behind a TLS reverse proxy. Embedded mode on a laptop serves plain
# http://127.0.0.1, so there everything below defaults off.
_ON_A_SERVER = bool(DATABASE_URL)
SECURE = env_bool("SECURE_COOKIES", _ON_A_SERVER)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _ON_A_SERVER)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _ON_A_SERVER else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Nothing frames the product's pages; the candidate page frames the LMS, not the reverse.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Behind the reverse proxy (docker-compose.yml publishes daphne on 127.0.0.1 only),
# X-Forwarded-Proto says whether the browser used HTTPS and the last address of
# X-Forwarded-For is the browser's. Only then are those headers believed: anyone
# reaching daphne directly could set them to anything.
BEHIND_PROXY = env_bool("BEHIND_PROXY", _ON_A_SERVER)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Preloading commits the whole registered domain to HTTPS in browsers' built-in
# lists, which is the domain owner's decision, so check --deploy's reminder is
# silenced unless SECURE_HSTS_PRELOAD asks for it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# Content-Security-Policy (django-csp): the templates have no inline script or
# style, so nothing but the site's own files runs. The candidate page sets
# frame-src to its exam's LMS origin (exams.views.candidate.take_exam). 'self' covers the
# page's own ws:// and wss:// sockets (CSP Level 3).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # data: for the live grid's thumbnails, blob: for the camera preview.
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "frame-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}

# Login throttling (django-axes): a username is locked out from one address after
# AXES_FAILURE_LIMIT wrong passwords, on /accounts/login/ and /admin/login/ alike,
# until AXES_COOLOFF_MINUTES pass or an administrator unlocks it (README, Security).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_CLIENT_IP_CALLABLE = "exams.limits.request_ip"

# Candidate links (/take/<token>/... and /ws/take/<token>/), pages and socket alike
# (exams.limits). An exam hall reaches us from one address (a campus NAT), so a
# valid token is never limited by its address: it has a budget of its own per
# minute, far above what its pages use (the verification page polls up to twice
# a second), which only a flood on that one link spends. Refused (unknown or
# expired) tokens count per address, strictly, since a real candidate rarely
# mistypes: over the limit, that address's further refused tokens get 429.
# RATELIMIT_ENABLE=false switches both off (the test suite does).
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
TAKE_TOKEN_REQUESTS_PER_MINUTE = env_int("TAKE_TOKEN_REQUESTS_PER_MINUTE", 300, minimum=1)
TAKE_REFUSALS_PER_MINUTE = env_int("TAKE_REFUSALS_PER_MINUTE", 30, minimum=1)
if env_str("TAKE_REQUESTS_PER_MINUTE"):
    raise ImproperlyConfigured(
        "TAKE_REQUESTS_PER_MINUTE (per address) is gone: an exam hall is one address. Valid links "
        "are limited per token (TAKE_TOKEN_REQUESTS_PER_MINUTE), refused ones per address "
        "(TAKE_REFUSALS_PER_MINUTE)."
    )

# Frame pipeline limits.
FRAME_MAX_BYTES = env_int("FRAME_MAX_BYTES", 512 * 1024, minimum=1024)
# daphne (4.2.2 or later) refuses longer websocket messages before the app sees
# them: the compose file and the Dockerfile pass it this, and it is also daphne's
# default, which bin/run and the tests use.
WEBSOCKET_MAX_MESSAGE_BYTES = 1024 * 1024
if FRAME_MAX_BYTES >= WEBSOCKET_MAX_MESSAGE_BYTES:
    raise ImproperlyConfigured(
        f"FRAME_MAX_BYTES must be below {WEBSOCKET_MAX_MESSAGE_BYTES} (daphne's limit)"
    )
# The browser sends one frame per exam interval; allow bursts up to this many
# frames per interval before refusing.
FRAME_BURST = 3
# A candidate connection not heard from for this long counts as lost.
HEARTBEAT_TIMEOUT_SECONDS = env_int("HEARTBEAT_TIMEOUT_SECONDS", 20, minimum=5)
# A connected page in progress whose camera gave no analysable frame for this many
# frame intervals (times the server's pace factor under overload) gets a high
# camera_silent alert, until frames are analysed again (checked every 5 s).
CAMERA_SILENT_INTERVALS = env_int("CAMERA_SILENT_INTERVALS", 8, minimum=2)
# Consent text version shown to candidates; bump when the policy text changes.
# The date the text last changed, as an ISO 8601 date (earlier versions: 2026-11-3, what declining
# means; 2026-11-2, chat is recorded; both written before versions were proper dates).
CONSENT_POLICY_VERSION = "2026-11-03"

# Whom a candidate asks about the exam (shown when they decline proctoring, and in invitations).
SUPPORT_CONTACT = env_str("SUPPORT_CONTACT")

# Invitation emails. The console backend prints them, links (candidates'
# credentials) included, to the log and counts them as sent: the default on a
# laptop (embedded mode), but on a server (DATABASE_URL set) only when
# EMAIL_BACKEND=console asks for it. Until EMAIL_BACKEND is set there, sending
# is refused with a one-line reason (exams/mail.py) and bin/run says so.
_EMAIL_BACKENDS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
}
EMAIL_BACKEND_NOT_SET = "exams.mail.NotConfiguredEmailBackend"
_email_backend = env_str("EMAIL_BACKEND", "" if DATABASE_URL else "console").lower()
if _email_backend and _email_backend not in _EMAIL_BACKENDS:
    raise ImproperlyConfigured(f"EMAIL_BACKEND must be console or smtp, not {_email_backend!r}")
EMAIL_BACKEND = _EMAIL_BACKENDS[_email_backend] if _email_backend else EMAIL_BACKEND_NOT_SET
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 20
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Open Proctor <proctor@localhost>")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {LOG_LEVEL!r}")
# One filter on the one handler masks candidates' link tokens in every record,
# django.request's "Not Found: /take/<token>/..." included (proctor/logfilters.py).
# "django" is named so that Django's own handlers (which would skip the filter)
# are replaced and its records reach this one. django-axes logs every sign-in
# with the username, address and browser at INFO; its lockouts stay (WARNING).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_tokens": {"()": "proctor.logfilters.MaskCandidateTokens"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask_tokens"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": LOG_LEVEL},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
