"""One settings module, read from the environment.

With no environment set, Pickwise runs on embedded defaults: SQLite in var/ (WAL),
kombu's filesystem broker in var/broker/ and media in var/media/. DATABASE_URL and
CELERY_BROKER_URL switch to PostgreSQL and Redis.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from pickwise.renamed_settings import renamed_int

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
VAR_DIR = Path(env.str("PICKWISE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)
# Under pytest the suite runs offline with a throwaway key; nothing else changes.
TESTING = env.bool("PICKWISE_TESTING", default="pytest" in sys.modules)
if TESTING:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

_DEV_SECRET = "django-insecure-dev-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _DEV_SECRET

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute URLs written into exports (image_0_url); empty leaves the columns empty.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_htmx",
    "annotate",
    "generation",
    "exports",
    "training",
    "frontend",
    "pickwise",
    "webhooks",
]

MIDDLEWARE = [
    # Outermost, so its figures cover every other middleware; does nothing unless
    # PICKWISE_SERVER_TIMING is on (a measurement aid, see pickwise/server_timing.py).
    "pickwise.server_timing.ServerTimingMiddleware",
    # Then: answers /healthz before host checks and the HTTPS redirect (see pickwise/health.py).
    "pickwise.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "pickwise.security.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "pickwise.urls"
WSGI_APPLICATION = "pickwise.wsgi.application"
ASGI_APPLICATION = "pickwise.asgi.application"

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

# Database -------------------------------------------------------------------------------
_SQLITE_PATH = VAR_DIR / "pickwise.sqlite3"
# An empty value (a blank entry in an env file) means unset, as for the broker below.
_DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{_SQLITE_PATH}"
try:
    DATABASES = {"default": env.db_url_config(_DATABASE_URL)}
except (ValueError, KeyError) as exc:  # django-environ raises these for unknown schemes
    raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from exc
# django-environ passes an unknown scheme through as the engine and drops a URL without a
# scheme; fail at start-up, not on the first query. The URL is not echoed: it holds a password.
if "." not in DATABASES["default"].get("ENGINE", "") or not DATABASES["default"].get("NAME"):
    raise ImproperlyConfigured(
        "DATABASE_URL is malformed: expected postgres://USER:PASSWORD@HOST:PORT/NAME "
        "or sqlite:///PATH."
    )

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so concurrent writers queue on
    # the busy timeout instead of failing with "database is locked" on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
        ),
    }
    # A file, not memory: worker processes and threads in tests must share it. One per test
    # process, so parallel runs do not clobber each other.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    # Ten minutes: a web thread that opens a connection pays the set-up and a cold backend
    # (catalogue and plan caches) on one request, 5 to 25 ms (bench/RESULTS.md); with 60 s
    # each of gunicorn's threads did so every minute, often enough to show in the p99.
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=600))
    # Off by default: a health check is one more round trip (SELECT 1) at the start of every
    # request, on the annotation hot path too. Without it a connection the server dropped
    # fails one request and is then replaced (Django closes connections that saw errors).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=False)
DATABASES["default"]["ATOMIC_REQUESTS"] = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Auth -----------------------------------------------------------------------------------
PASSWORD_MIN_LENGTH = env.int("PASSWORD_MIN_LENGTH", default=10)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (pickwise/login_throttle.py) ----------------------------------------------
AUTHENTICATION_BACKENDS = ["pickwise.login_throttle.ThrottledModelBackend"]
# How many proxies in front of the app append to X-Forwarded-For; 0 trusts no header and
# takes REMOTE_ADDR as the client's address.
PICKWISE_TRUSTED_PROXIES = env.int("PICKWISE_TRUSTED_PROXIES", default=0)
PICKWISE_LOGIN_FAILURES_PER_ACCOUNT = env.int("PICKWISE_LOGIN_FAILURES_PER_ACCOUNT", default=10)
PICKWISE_LOGIN_FAILURES_PER_ADDRESS = env.int("PICKWISE_LOGIN_FAILURES_PER_ADDRESS", default=50)
PICKWISE_LOGIN_LOCKOUT_SECONDS = env.int("PICKWISE_LOGIN_LOCKOUT_SECONDS", default=900)
for _name in (
    "PICKWISE_LOGIN_FAILURES_PER_ACCOUNT",
    "PICKWISE_LOGIN_FAILURES_PER_ADDRESS",
    "PICKWISE_LOGIN_LOCKOUT_SECONDS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
if PICKWISE_TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured("PICKWISE_TRUSTED_PROXIES must be 0 or more.")

LOGIN_URL = "frontend:login"
LOGIN_REDIRECT_URL = "frontend:home"
LOGOUT_REDIRECT_URL = "frontend:login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# HTTPS in production (all off unless set) -----------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured("SECURE_HSTS_SECONDS must be 0 (off) or more.")
# Behind a proxy that ends TLS: the header it sets and the value meaning HTTPS, e.g.
# "X-Forwarded-Proto=https". Only set it when the proxy always sets or strips that header:
# otherwise a client could claim HTTPS itself.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="").strip()
SECURE_PROXY_SSL_HEADER = None
if _proxy_ssl_header:
    _name, _sep, _value = _proxy_ssl_header.partition("=")
    if not (_sep and _name.strip() and _value.strip()):
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must look like X-Forwarded-Proto=https."
        )
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _name.strip().upper().replace("-", "_"),
        _value.strip(),
    )

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static and media -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {
        "BACKEND": env.str("DEFAULT_STORAGE", default="django.core.files.storage.FileSystemStorage")
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if TESTING or DEBUG:
    STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"

# Upload limits: requests are capped before parsing; image checks live in annotate/uploads.py.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
# Embedded default: Django serves media files; production serves them from nginx or S3.
PICKWISE_SERVE_MEDIA = env.bool("PICKWISE_SERVE_MEDIA", default=True)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
PICKWISE_MAX_UPLOAD_BYTES = env.int("PICKWISE_MAX_UPLOAD_BYTES", default=512 * 1024 * 1024)
PICKWISE_MAX_IMAGE_BYTES = env.int("PICKWISE_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
PICKWISE_MAX_IMAGE_PIXELS = env.int("PICKWISE_MAX_IMAGE_PIXELS", default=4096 * 4096)
PICKWISE_MAX_ARCHIVE_MEMBERS = env.int("PICKWISE_MAX_ARCHIVE_MEMBERS", default=100_000)
PICKWISE_MAX_PROMPTS_PER_IMPORT = env.int("PICKWISE_MAX_PROMPTS_PER_IMPORT", default=100_000)

# REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so an unauthenticated request gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotate.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "pickwise.api.AutoSchema",
    "EXCEPTION_HANDLER": "pickwise.api.exception_handler",
    # JSON bodies only, so the schema declares each body once; upload views add multipart.
    # JSON, refusing deep nesting and text no database stores (NUL, lone surrogates).
    "DEFAULT_PARSER_CLASSES": ["pickwise.text_input.StorableJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.str("THROTTLE_AUTH", default="20/min"),
        "submit": env.str("THROTTLE_SUBMIT", default="600/min"),
        "next": env.str("THROTTLE_NEXT", default="600/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles key on the address the trusted proxies saw; never on a client's own header.
    "NUM_PROXIES": PICKWISE_TRUSTED_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pickwise API",
    "DESCRIPTION": "Campaigns, annotation, quality, exports and training for image preferences.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name ("status", "method") get names of their own
    # instead of hashed ones (Status863Enum), so generated clients read well.
    "ENUM_NAME_OVERRIDES": {
        "CampaignKindEnum": "annotate.models.Campaign.Kind",
        "CampaignStatusEnum": "annotate.models.Campaign.Status",
        "MemberRoleEnum": "annotate.models.Membership.Role",
        "GateStateEnum": "annotate.models.Membership.Gate",
        "ImageImportStatusEnum": "annotate.models.ImageImport.Status",
        "GeneratorDtypeEnum": "generation.models.Generator.DType",
        "GenerationJobStatusEnum": "generation.models.GenerationJob.Status",
        "ExportFormatEnum": "exports.models.Export.Format",
        "ExportStatusEnum": "exports.models.Export.Status",
        "TrainingMethodEnum": "training.models.TrainingJob.Method",
        "TrainingModeEnum": "training.models.TrainingJob.Mode",
        "TrainingJobStatusEnum": "training.models.TrainingJob.Status",
    },
}
# Ids in paths (pickwise/converters.py): whole numbers of at most 18 digits.
SPECTACULAR_SETTINGS["PATH_CONVERTER_OVERRIDES"] = {
    "id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}
}

# Seconds a token's user is remembered (annotate/authentication.py): a revoked token or a
# deactivated user stops working at once in the process that saw it, in the others within this.
PICKWISE_TOKEN_CACHE_SECONDS = env.int("PICKWISE_TOKEN_CACHE_SECONDS", default=10)
# A Server-Timing header on every response: wall, CPU, SQL, COMMIT and GC time inside Django.
# For benchmarks (bench/annotate_load.py); off in production.
PICKWISE_SERVER_TIMING = env.bool("PICKWISE_SERVER_TIMING", default=False)

# Throttle counters live in the cache; the database cache is shared by every web process.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pickwise",
    }
}
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache("CACHE_URL")}

# Celery -----------------------------------------------------------------------------------
# Parallel test runs (pytest-xdist, `make test`) name each test process gw0, gw1, ... in
# PYTEST_XDIST_WORKER, which the workers and servers its tests start inherit. Each test process
# gets a broker of its own, so that no worker takes another process's tasks: the filesystem
# broker's folder is var/broker-gwN/, and on Redis test process N uses database
# (configured + 10 + N) mod 16 of the same server: redis://HOST:6379/1 gives gw0 database 11 and
# gw1 database 12, CI's redis://HOST:6379/0 gives 10 and 11.
_TEST_PROCESS = os.environ.get("PYTEST_XDIST_WORKER", "")


def redis_database_for_test_process(url: str, test_process: str) -> str:
    """`url` with its database number moved for test process `test_process` (gwN), as above."""
    parts = urlsplit(url)
    number = test_process.removeprefix("gw")
    configured = parts.path.strip("/") or "0"
    if not (number.isdigit() and configured.isdigit()):
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL {url!r} under test process {test_process!r}: expected a Redis "
            "database number and a process named gwN."
        )
    database = (int(configured) + 10 + int(number)) % 16
    return urlunsplit(parts._replace(path=f"/{database}"))


_BROKER_DIR = VAR_DIR / (f"broker-{_TEST_PROCESS}" if _TEST_PROCESS else "broker")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "filesystem://"
if "://" not in CELERY_BROKER_URL:
    # kombu would read a bare word as an AMQP host name and retry it forever.
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is malformed: expected a URL such as redis://HOST:6379/0."
    )
if (
    _TEST_PROCESS
    and "pytest" in sys.modules
    and CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
):
    # Only in the test process itself: it writes the result to the environment, where Celery
    # reads it before this setting and the processes its tests start inherit it as it is.
    CELERY_BROKER_URL = redis_database_for_test_process(CELERY_BROKER_URL, _TEST_PROCESS)
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("in", "processed", "control"):
        (_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "in"),
        "data_folder_out": str(_BROKER_DIR / "in"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
    # filesystem:// means kombu's filesystem transport with atomic message files
    # (pickwise/broker.py, registered by pickwise/celery.py).
else:
    # Above the longest GPU job, so an unacknowledged task is not handed out twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # Sweeps run where no long job can sit in front of them (exact names win over globs).
    "generation.recover_stalled": {"queue": "default"},
    "training.recover_stalled": {"queue": "default"},
    "generation.*": {"queue": "generate"},
    "training.*": {"queue": "train"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "annotate.sweep_expired_assignments": {
        "task": "annotate.sweep_expired_assignments",
        "schedule": timedelta(minutes=1),
    },
}

# Durable enqueue (pickwise/enqueue.py) -------------------------------------------------------
# Seconds a request waits for an unreachable broker before it leaves the task in the outbox.
CELERY_BROKER_TIMEOUT = env.float("CELERY_BROKER_TIMEOUT", default=3.0)
if CELERY_BROKER_TIMEOUT < 2:
    raise ImproperlyConfigured("CELERY_BROKER_TIMEOUT must be at least 2 (seconds).")
CELERY_BROKER_CONNECTION_TIMEOUT = CELERY_BROKER_TIMEOUT
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Connecting, and every reply: a broker that accepts connections but never answers (frozen,
    # paused) must not hang a request either. Workers block on Redis for 1 s at a time, below it.
    CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"] = CELERY_BROKER_TIMEOUT
    CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"] = CELERY_BROKER_TIMEOUT
# Outbox messages older than this are sent again by the sweep (a send that worked has
# deleted its message within a second of its commit).
PICKWISE_OUTBOX_RESEND_AFTER = env.int("PICKWISE_OUTBOX_RESEND_AFTER", default=30)
CELERY_BEAT_SCHEDULE["pickwise.outbox_resend"] = {
    "task": "pickwise.outbox_resend",
    "schedule": timedelta(minutes=1),
}
# How often running imports and exports write their heartbeat, from a thread; well under
# their heartbeat timeouts, so a dead pool process is noticed within a couple of minutes.
PICKWISE_HEARTBEAT_SECONDS = env.float("PICKWISE_HEARTBEAT_SECONDS", default=20.0)

PICKWISE_DEMO_PASSWORD = env.str("PICKWISE_DEMO_PASSWORD", default="")
PICKWISE_MAX_OPEN_ASSIGNMENTS = env.int("PICKWISE_MAX_OPEN_ASSIGNMENTS", default=2)
# Lets a simulation seed the assignment engine's draws (assignment_draws_seed), so a run
# replays. Code-only, never read from the environment: in service which task is gold or a
# repeat must stay unpredictable. bench/simulate_crowd.py and tests set it.
PICKWISE_SIMULATION = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "forbidden_without_traceback": {"()": "pickwise.security.ForbiddenWithoutTraceback"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"filters": ["forbidden_without_traceback"]}},
}

# Exports ----------------------------------------------------------------------------------
# Export folders live outside MEDIA_ROOT: media is served without authentication, and exports
# are for researchers only (downloads go through /api/exports/{id}/files/{name}).
EXPORT_ROOT = Path(env.str("EXPORT_ROOT", default=str(VAR_DIR / "exports")))
EXPORT_SHARD_MAX_BYTES = env.int("EXPORT_SHARD_MAX_BYTES", default=500 * 1024 * 1024)
EXPORT_BATCH_ROWS = env.int("EXPORT_BATCH_ROWS", default=2000)
EXPORT_JPEG_QUALITY = env.int("EXPORT_JPEG_QUALITY", default=95)
EXPORT_IMAGE_CACHE_BYTES = env.int("EXPORT_IMAGE_CACHE_BYTES", default=128 * 1024 * 1024)
# A running build beats every PICKWISE_HEARTBEAT_SECONDS (pickwise/heartbeat.py). One silent for
# this long is taken to have lost its worker: re-queued, or failed after
# PICKWISE_EXPORT_MAX_ATTEMPTS builds, its partial folder removed (pickwise/jobs.py).
# Formerly EXPORT_HEARTBEAT_TIMEOUT and EXPORT_MAX_ATTEMPTS, still read with a warning.
PICKWISE_EXPORT_HEARTBEAT_TIMEOUT = renamed_int(
    env, new="PICKWISE_EXPORT_HEARTBEAT_TIMEOUT", old="EXPORT_HEARTBEAT_TIMEOUT", default=120
)
PICKWISE_EXPORT_MAX_ATTEMPTS = renamed_int(
    env, new="PICKWISE_EXPORT_MAX_ATTEMPTS", old="EXPORT_MAX_ATTEMPTS", default=3
)
if PICKWISE_EXPORT_HEARTBEAT_TIMEOUT < 1 or PICKWISE_EXPORT_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured(
        "PICKWISE_EXPORT_HEARTBEAT_TIMEOUT and PICKWISE_EXPORT_MAX_ATTEMPTS must be positive."
    )
CELERY_BEAT_SCHEDULE["exports.recover_stalled"] = {
    "task": "exports.recover_stalled",
    "schedule": timedelta(minutes=1),
}

# Generation -------------------------------------------------------------------------------
# Items per generate task (one pipeline call per batch, chunked by the worker's max batch size).
PICKWISE_GENERATION_BATCH_SIZE = env.int("PICKWISE_GENERATION_BATCH_SIZE", default=8)
# A running item not finished this many seconds after its claim (a batch's one sign of life)
# is taken to be lost and claimed again. Formerly PICKWISE_GENERATION_CLAIM_TIMEOUT, still read
# with a warning.
PICKWISE_GENERATION_HEARTBEAT_TIMEOUT = renamed_int(
    env,
    new="PICKWISE_GENERATION_HEARTBEAT_TIMEOUT",
    old="PICKWISE_GENERATION_CLAIM_TIMEOUT",
    default=3600,
)
# An item whose worker died this many times is failed instead of retried once more.
PICKWISE_GENERATION_MAX_ATTEMPTS = env.int("PICKWISE_GENERATION_MAX_ATTEMPTS", default=5)
# A local PickScore (CLIP) folder; when set, generate workers store Image.score. Off by default.
PICKWISE_REWARD_MODEL_DIR = env.str("PICKWISE_REWARD_MODEL_DIR", default="")
if PICKWISE_GENERATION_BATCH_SIZE < 1 or PICKWISE_GENERATION_HEARTBEAT_TIMEOUT < 1:
    raise ImproperlyConfigured(
        "PICKWISE_GENERATION_BATCH_SIZE and PICKWISE_GENERATION_HEARTBEAT_TIMEOUT must be positive."
    )
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["GenerationJobStatusEnum"] = (
    "generation.models.GenerationJob.Status"
)
CELERY_BEAT_SCHEDULE["generation.recover_stalled"] = {
    "task": "generation.recover_stalled",
    "schedule": timedelta(minutes=5),
}

# Image imports ----------------------------------------------------------------------------
# Rows (manifest lines or parquet rows) per import: every row is checked before any is written.
PICKWISE_MAX_IMPORT_ROWS = env.int("PICKWISE_MAX_IMPORT_ROWS", default=100_000)
# Uploads wait here for their worker, outside MEDIA_ROOT (media is served without
# authentication); web and default workers must share it. Each is removed when its job ends.
IMPORT_ROOT = Path(env.str("IMPORT_ROOT", default=str(VAR_DIR / "imports")))
# A running import beats every PICKWISE_HEARTBEAT_SECONDS, from a thread, through its write
# too; one with no heartbeat for this long has lost its worker: it is queued again.
PICKWISE_IMPORT_HEARTBEAT_TIMEOUT = env.int("PICKWISE_IMPORT_HEARTBEAT_TIMEOUT", default=120)
# An import whose worker died this many times fails instead of running once more.
PICKWISE_IMPORT_MAX_ATTEMPTS = env.int("PICKWISE_IMPORT_MAX_ATTEMPTS", default=3)
if PICKWISE_IMPORT_HEARTBEAT_TIMEOUT < 1 or PICKWISE_IMPORT_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured(
        "PICKWISE_IMPORT_HEARTBEAT_TIMEOUT and PICKWISE_IMPORT_MAX_ATTEMPTS must be positive."
    )
# A heartbeat at least twice per timeout, or a live job would be taken for a dead one.
if (
    not 0
    < 2 * PICKWISE_HEARTBEAT_SECONDS
    <= min(PICKWISE_EXPORT_HEARTBEAT_TIMEOUT, PICKWISE_IMPORT_HEARTBEAT_TIMEOUT)
):
    raise ImproperlyConfigured(
        "PICKWISE_HEARTBEAT_SECONDS must be positive and at most half of "
        "PICKWISE_EXPORT_HEARTBEAT_TIMEOUT and PICKWISE_IMPORT_HEARTBEAT_TIMEOUT."
    )
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["ImageImportStatusEnum"] = (
    "annotate.models.ImageImport.Status"
)
CELERY_BEAT_SCHEDULE["annotate.recover_image_imports"] = {
    "task": "annotate.recover_image_imports",
    "schedule": timedelta(minutes=1),
}

# Quality ----------------------------------------------------------------------------------
# Full recompute of rater counters and agreement; submits keep the counters current between.
CELERY_BEAT_SCHEDULE["quality.recompute_all"] = {
    "task": "quality.recompute_all",
    "schedule": timedelta(minutes=15),
}

# Training ---------------------------------------------------------------------------------
# Each job's weights, checkpoints, feature cache, metrics and trainer logs: TRAINING_ROOT/job-N.
TRAINING_ROOT = Path(env.str("TRAINING_ROOT", default=str(VAR_DIR / "training")))
# Local model folders that generators and training jobs may name (TRAINING_ROOT is always
# allowed: tuned models are written there); anything else is refused on the web side.
PICKWISE_MODEL_ROOTS = [
    Path(folder) for folder in env.list("PICKWISE_MODEL_ROOTS", default=[str(VAR_DIR / "models")])
]
# How often a running job's progress and heartbeat reach the database.
PICKWISE_TRAINING_PROGRESS_SECONDS = env.float("PICKWISE_TRAINING_PROGRESS_SECONDS", default=2.0)
# A running job with no heartbeat for this long is taken to have lost its worker and re-queued.
PICKWISE_TRAINING_HEARTBEAT_TIMEOUT = env.int("PICKWISE_TRAINING_HEARTBEAT_TIMEOUT", default=300)
# A job whose worker died this many times fails instead of resuming once more.
PICKWISE_TRAINING_MAX_ATTEMPTS = env.int("PICKWISE_TRAINING_MAX_ATTEMPTS", default=3)
if PICKWISE_TRAINING_PROGRESS_SECONDS <= 0 or PICKWISE_TRAINING_HEARTBEAT_TIMEOUT < 1:
    raise ImproperlyConfigured(
        "PICKWISE_TRAINING_PROGRESS_SECONDS and PICKWISE_TRAINING_HEARTBEAT_TIMEOUT must be "
        "positive."
    )
CELERY_BEAT_SCHEDULE["training.recover_stalled"] = {
    "task": "training.recover_stalled",
    "schedule": timedelta(minutes=5),
}

# Webhooks ---------------------------------------------------------------------------------
# Seconds one delivery attempt may take (connect and answer).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Failed attempts wait WEBHOOK_RETRY_BASE_SECONDS, doubling, at most the cap; a delivery
# fails for good after WEBHOOK_MAX_ATTEMPTS (the defaults keep trying for about a day).
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=10.0)
WEBHOOK_RETRY_CAP_SECONDS = env.float("WEBHOOK_RETRY_CAP_SECONDS", default=3600.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=30)
# judgment.batch: at most one event per endpoint and campaign this often, of at most this
# many judgments (more wait for the next batch).
WEBHOOK_JUDGMENT_BATCH_SECONDS = env.float("WEBHOOK_JUDGMENT_BATCH_SECONDS", default=60.0)
WEBHOOK_JUDGMENT_BATCH_MAX = env.int("WEBHOOK_JUDGMENT_BATCH_MAX", default=1000)
if min(WEBHOOK_TIMEOUT_SECONDS, WEBHOOK_RETRY_BASE_SECONDS, WEBHOOK_JUDGMENT_BATCH_SECONDS) <= 0:
    raise ImproperlyConfigured(
        "WEBHOOK_TIMEOUT_SECONDS, WEBHOOK_RETRY_BASE_SECONDS and WEBHOOK_JUDGMENT_BATCH_SECONDS "
        "must be positive."
    )
if WEBHOOK_MAX_ATTEMPTS < 1 or WEBHOOK_JUDGMENT_BATCH_MAX < 1:
    raise ImproperlyConfigured(
        "WEBHOOK_MAX_ATTEMPTS and WEBHOOK_JUDGMENT_BATCH_MAX must be 1 or more."
    )
CELERY_BEAT_SCHEDULE["webhooks.send_due"] = {
    "task": "webhooks.send_due",
    "schedule": timedelta(minutes=1),
}
CELERY_BEAT_SCHEDULE["webhooks.judgment_batches"] = {
    "task": "webhooks.judgment_batches",
    "schedule": timedelta(seconds=WEBHOOK_JUDGMENT_BATCH_SECONDS),
}

VAR_DIR.mkdir(parents=True, exist_ok=True)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
