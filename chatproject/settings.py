"""Settings for the chat platform, read from the environment (12-factor).

With nothing set, the *embedded default* serves: SQLite under var/, Channels'
in-memory layer, the local-memory cache, Celery tasks run eagerly and push
notifications logged. DATABASE_URL, REDIS_URL and the FCM variables switch
each part to the real service. Nothing below this file asks "is this a test?".
"""

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from chatproject.env import (
    ConfigurationError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ConfigurationError("SECRET_KEY must be set when DEBUG is off")
    # Development only: keep one random key under var/ so sessions and tokens
    # survive a restart of `make run`.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Set (e.g. ".example.com") when the web pages and the chat servers are on
# different hosts: the browser's socket authenticates with the session cookie.
SESSION_COOKIE_DOMAIN = env_str("SESSION_COOKIE_DOMAIN") or None

INSTALLED_APPS = [
    # daphne first: it replaces runserver with the ASGI server.
    "daphne",
    "chatproject.admin_site.ChatAdminConfig",  # django.contrib.admin, our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "messaging",
    "presence",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chatproject.middleware.ApiErrorsMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"
WSGI_APPLICATION = "chatproject.wsgi.application"

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

# --- Database -------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # Under ASGI every database_sync_to_async call may land on a new thread;
        # without a pool each one opens a connection (measured: 2x CPU per message).
        # Django requires CONN_MAX_AGE=0 with psycopg's pool.
        _db["OPTIONS"] = {
            "pool": {
                "min_size": env_int("DB_POOL_MIN", 2),
                "max_size": env_int("DB_POOL_MAX", 20),
                "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
            }
        }
    DATABASES = {"default": _db}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two concurrent sends
                # queue instead of failing with "database is locked" on upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Redis: channel layer, cache, Celery broker ---------------------------
REDIS_URL = env_str("REDIS_URL")
REDIS_PREFIX = env_str("REDIS_PREFIX", "chat")
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 1000)

# Our layer (chatproject/channel_layer.py): one PUBLISH per group message and
# fan-out inside each chat server; in-process when there is no Redis.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "chatproject.channel_layer.ChatChannelLayer",
        "CONFIG": {
            "url": REDIS_URL,
            "prefix": f"{REDIS_PREFIX}:asgi",
            # Messages waiting per socket; past it the socket repairs from its inbox.
            "capacity": env_int("CHANNEL_CAPACITY", 1000),
            "max_connections": REDIS_MAX_CONNECTIONS,
        },
    }
}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ----------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
# Without a broker the embedded default runs tasks inline, through the same code.
CELERY_TASK_ALWAYS_EAGER = not (REDIS_URL or env_str("CELERY_BROKER_URL"))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "global_keyprefix": f"{REDIS_PREFIX}:celery:",
}
CELERY_TASK_DEFAULT_QUEUE = f"{REDIS_PREFIX}-default"

# --- Push notifications (FCM HTTP v1 through pyfcm) ---------------------------
FCM_CREDENTIALS_FILE = env_str("FCM_CREDENTIALS_FILE")
FCM_PROJECT_ID = env_str("FCM_PROJECT_ID")
# pyfcm's endpoint base; overridden only to point at a local fake in tests.
FCM_ENDPOINT = env_str("FCM_ENDPOINT", "https://fcm.googleapis.com")

# --- Auth ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "app"
LOGOUT_REDIRECT_URL = "login"

# --- REST API ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON in, JSON out: form parsers read "" as "absent" and fail with a 500 on
    # too many fields; no client of ours sends forms to the API.
    "DEFAULT_PARSER_CLASSES": ["chatproject.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "chatproject.api_errors.exception_handler",
    # Counted in the shared cache (Redis when REDIS_URL is set), so the limits hold
    # across every daphne process. Authentication endpoints add the "auth" scope.
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttles.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_rate("THROTTLE_AUTH", "20/min"),
        "user": env_rate("THROTTLE_USER", "1200/min"),
        # Reports per user: one account must not bury the moderators' queue.
        "report": env_rate("THROTTLE_REPORT", "30/hour"),
    },
    # How many reverse proxies append to X-Forwarded-For. Without it DRF would take
    # the client-supplied header as the address, and a forged one dodges throttling.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
# Failed log-ins per account from all addresses together, then none until
# the window ends (accounts.login_guard).
THROTTLE_LOGIN_FAILURES = env_rate("THROTTLE_LOGIN_FAILURES", "10/hour")
# Knox's token model is swappable; naming it lets other models point at it.
KNOX_TOKEN_MODEL = "knox.AuthToken"
_token_ttl_hours = env_int("TOKEN_TTL_HOURS", 24 * 30)
REST_KNOX = {
    # 0 means tokens never expire; otherwise an unused token lapses after the TTL.
    "TOKEN_TTL": timedelta(hours=_token_ttl_hours) if _token_ttl_hours else None,
    "AUTO_REFRESH": True,
    # Clients send `Authorization: Bearer <token>`, on REST and on the WebSocket handshake.
    "AUTH_HEADER_PREFIX": "Bearer",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chat platform API",
    "DESCRIPTION": "REST API of the chat platform. The live chat is the WebSocket at "
    "/ws/chat/, described in docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Our `id` URL converter (chatproject/converters.py): up to 18 digits.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
    },
}

# --- Chat ------------------------------------------------------------------
CHAT_MAX_GROUP_MEMBERS = env_int("CHAT_MAX_GROUP_MEMBERS", 100)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 100_000)
CHAT_PUBLIC_WS_URL = env_str("CHAT_PUBLIC_WS_URL")
# Seconds a chat server stays discoverable after its last renewal (messaging.chat_servers).
# At least 1 s: it is renewed every third of it.
CHAT_SERVER_TTL = max(1.0, env_float("CHAT_SERVER_TTL", 15.0))
# Frames per second per socket (sustained, burst).
CHAT_SOCKET_RATE = env_float("CHAT_SOCKET_RATE", 20.0)
CHAT_SOCKET_BURST = env_float("CHAT_SOCKET_BURST", 60.0)
# A hello whose cursor is further behind than this gets `reset` (sync by REST).
CHAT_MAX_REPLAY = env_int("CHAT_MAX_REPLAY", 10_000)
# Seconds between a socket's checks of its inbox head on heartbeat (a dropped
# last event is delivered within this).
# A backstop: the channel layer announces what it could not deliver
# (`layer.gap`), so this only catches the unforeseen, a bare UPDATE of
# is_active and an expired token. Measured: at 15 s the checks were most of a
# heartbeat's cost (~2 ms of CPU per beat).
CHAT_HEAD_CHECK = env_float("CHAT_HEAD_CHECK", 60.0)
# Sends waiting to be stored per chat server; past this a send is answered
# `overloaded` (messaging/send_queue.py). At most this many go in one batch.
CHAT_SEND_QUEUE_MAX = env_int("CHAT_SEND_QUEUE_MAX", 2000)
CHAT_SEND_BATCH_MAX = env_int("CHAT_SEND_BATCH_MAX", 200)
# Connections (lanes) the send queue stores batches on side by side, each
# conversation always on the same one (messaging.send_queue). One by default:
# with PostgreSQL on the chat server's two cores, two lanes raised the
# saturated throughput by a quarter but not the rate held at p99 <= 50 ms
# (docs/benchmarks.md, session 12). Where PostgreSQL has cores of its own
# two may pay; not measured.
CHAT_SEND_CONNECTIONS = max(1, env_int("CHAT_SEND_CONNECTIONS", 1))
# Seconds of socket sends whose pushes go out as one Celery task
# (messaging.send_queue.PushCoalescer); a stopping server sends what waits.
CHAT_PUSH_WINDOW = env_float("CHAT_PUSH_WINDOW", 0.1)
# Days a closed report keeps its copy of the reported words and its note
# (messaging.reports.reports_forget_closed, a maintenance task).
REPORT_RETENTION_DAYS = env_int("REPORT_RETENTION_DAYS", 90)
PRESENCE_HEARTBEAT_INTERVAL = env_float("PRESENCE_HEARTBEAT_INTERVAL", 5.0)
PRESENCE_TIMEOUT = env_float("PRESENCE_TIMEOUT", 30.0)
# Groups up to this size get live presence; members of bigger ones ask on demand.
PRESENCE_FANOUT_MAX_GROUP = env_int("PRESENCE_FANOUT_MAX_GROUP", 20)

# --- I18N, static --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# In development serve straight from the app and static/ folders, no collectstatic.
SERVESTATIC_USE_FINDERS = DEBUG
SERVESTATIC_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"

# --- Security (production: DEBUG=0) ----------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
