"""RenderHub settings: the environment (and an optional ``.env``) is the only source.

With nothing set, everything runs embedded under ``var/``: SQLite, Celery's
filesystem broker, local-disk storage and the celery compute backend.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("RENDERHUB_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key kept in var/ (never a committed default)."""
    if key := env.str("DJANGO_SECRET_KEY", default=""):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists() or not path.read_text().strip():
        # Written whole under a private name, then linked into place: processes starting
        # together (web, workers, beat) never read a half-written file or keep different
        # keys, and an empty file left by a crash is replaced.
        tmp = VAR_DIR / f".secret_key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
        try:
            if path.exists() and not path.read_text().strip():
                tmp.replace(path)
            else:
                os.link(tmp, path)  # fails if another process got there first: use its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
RENDERHUB_VERSION = "0.1.0"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "rest_framework",
    "drf_spectacular",
    "renderhub",
    "images",
    "projects",
    "clusters",
    "jobs",
    "workflows",
    "notifications",
    "api",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "renderhub.middleware.RejectNulBytesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "renderhub.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "renderhub.urls"
WSGI_APPLICATION = "renderhub.wsgi.application"

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

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, beat and render workers write concurrently: WAL plus IMMEDIATE transactions
    # turn "database is locked" into a short wait.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests run real workers in threads: an in-memory database would serialise them on
    # table locks, so the test database is a file too (one per test run).
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The pages have their own login, open to every active user (artists need no staff flag);
# the admin keeps its own, for staff.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = ["renderhub.auth.ThrottledModelBackend"]
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
# Wrong passwords from one address, whatever the user names, before that address is locked
# out too (password spraying).
LOGIN_MAX_FAILURES_PER_ADDRESS = env.int("LOGIN_MAX_FAILURES_PER_ADDRESS", default=30)
# Reverse proxies in front of the web server that append the client's address to
# X-Forwarded-For. 0 (default without DJANGO_BEHIND_PROXY): the header is never read, since
# anyone can send it; N: the N-th entry from the right is the client.
TRUSTED_PROXY_COUNT = env.int(
    "TRUSTED_PROXY_COUNT", default=1 if env.bool("DJANGO_BEHIND_PROXY", default=False) else 0
)
# Shared by every web process on this machine (login throttling, cached cloud choices).
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing one at start
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# --- Production hardening (all on unless DEBUG) ---------------------------------------
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_BEHIND_PROXY", default=False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Storage --------------------------------------------------------------------------
LOCAL_STORAGE_ROOT = Path(env.str("LOCAL_STORAGE_ROOT", default=str(VAR_DIR / "storage"))).resolve()
# Where RenderHub keeps what it stores itself (uploaded scenes, default output prefixes).
STORAGE_URL = env.str("STORAGE_URL", default=LOCAL_STORAGE_ROOT.as_uri())
OSS_ENDPOINT = env.str("OSS_ENDPOINT", default="")
OSS_ACCESS_KEY_ID = env.str("OSS_ACCESS_KEY_ID", default="")
OSS_ACCESS_KEY_SECRET = env.str("OSS_ACCESS_KEY_SECRET", default="")
STORAGE_TIMEOUT = env.float("STORAGE_TIMEOUT", default=30.0)
STORAGE_RETRIES = env.int("STORAGE_RETRIES", default=3)
# Storage URL prefixes staff who are not superusers may use as project output prefixes and
# mapping sources (empty: only superusers set those). Mapping the root reaches every project.
STORAGE_ALLOWED_PREFIXES = env.list("STORAGE_ALLOWED_PREFIXES", default=[])
# Where the New project page puts a project's folder (default: <STORAGE_URL>projects/).
# Users who may add projects but are not superusers need it inside STORAGE_ALLOWED_PREFIXES.
PROJECTS_STORAGE_URL = env.str("PROJECTS_STORAGE_URL", default="")
SIGNED_URL_TTL = env.int("SIGNED_URL_TTL", default=3600)
# Uploads from the storage browser (into writable mappings). The largest file one upload
# may carry; a browser upload to OSS (a signed POST) stops at 5 GB whatever this says.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=50 * 1024**3)
# Local storage takes files in pieces of at most this many bytes (a lost piece is resent).
UPLOAD_CHUNK_BYTES = env.int("UPLOAD_CHUNK_BYTES", default=8 * 1024**2)
# A partial upload untouched this long is deleted, and its upload link stops working.
UPLOAD_STALE_SECONDS = env.int("UPLOAD_STALE_SECONDS", default=24 * 3600)
# Per user: unfinished local uploads and the bytes they announced (all of them are reserved
# on disk until they end, so parallel starts cannot promise the same free space twice).
UPLOAD_MAX_OPEN = env.int("UPLOAD_MAX_OPEN", default=200)
UPLOAD_MAX_OPEN_BYTES = env.int("UPLOAD_MAX_OPEN_BYTES", default=100 * 1024**3)
# How long a signed OSS POST form stays valid.
UPLOAD_POLICY_SECONDS = env.int("UPLOAD_POLICY_SECONDS", default=3600)

# --- Compute --------------------------------------------------------------------------
RENDERHUB_DEPLOYMENT_TAG = env.str("RENDERHUB_DEPLOYMENT_TAG", default="renderhub")
RENDER_TIMEOUT = env.int("RENDER_TIMEOUT", default=6 * 3600)  # hard limit per chunk, seconds
RENDER_MAX_NODES_PER_JOB = env.int("RENDER_MAX_NODES_PER_JOB", default=64)
# How long a render node's write grants (its chunk's frames and logs) stay good; a node
# renews them with its heartbeats while the chunk runs (jobs.node_claims).
RENDER_GRANT_SECONDS = env.int("RENDER_GRANT_SECONDS", default=3600)
# Clusters are shared: a member's job above this priority would make other projects' jobs
# wait. Higher priorities need the change-render-job right (a render wrangler, staff).
RENDER_MEMBER_MAX_PRIORITY = env.int("RENDER_MEMBER_MAX_PRIORITY", default=0)
RENDER_MAX_FRAMES_PER_JOB = env.int("RENDER_MAX_FRAMES_PER_JOB", default=100_000)
RENDER_TASK_MAX_ATTEMPTS = env.int("RENDER_TASK_MAX_ATTEMPTS", default=3)
# A job given neither nodes nor a chunk size (own machines) is a work queue of adaptive
# chunks of about this many seconds of render time each (jobs.chunking); 0: even chunks,
# one per node, as before.
RENDER_CHUNK_SECONDS = env.int("RENDER_CHUNK_SECONDS", default=60)
# What starting a chunk costs (the renderer loading the scene), seconds: adaptive chunks
# hold at least four times this much work, so start-up never dominates.
RENDER_CHUNK_STARTUP_SECONDS = env.float("RENDER_CHUNK_STARTUP_SECONDS", default=1.0)
# A node that fails this many chunks of one job takes no more of that job's chunks (0: off).
RENDER_BLOCKLIST_AFTER = env.int("RENDER_BLOCKLIST_AFTER", default=2)
RENDER_HEARTBEAT_SECONDS = env.int("RENDER_HEARTBEAT_SECONDS", default=5)
# A running chunk whose heartbeat is older than this is considered lost and requeued.
RENDER_STALE_AFTER = env.int("RENDER_STALE_AFTER", default=30)
# Kill a render that prints nothing for this long (a hung renderer); 0 disables.
RENDER_STALL_TIMEOUT = env.int("RENDER_STALL_TIMEOUT", default=1800)
# Renderer threads per chunk; 0 = all of this machine's cores (the slots' renderers share
# them, and the last one running takes them all).
RENDER_THREADS = env.int("RENDER_THREADS", default=0)
# A render worker keeps a job's Blender running this long after a chunk, for the job's next
# chunk on that slot (no start-up again; jobs.runner); 0: a new Blender for every chunk.
RENDER_WARM_SECONDS = env.float("RENDER_WARM_SECONDS", default=10.0)
# A chunk still unclaimed this long after it was sent, while a node of its cluster is idle,
# is sent again (its message was lost, e.g. by a broker crash).
RENDER_REDISPATCH_AFTER = env.int("RENDER_REDISPATCH_AFTER", default=300)
# A chunk's message sent to a free slot holds the slot this long while untaken (jobs.dispatch).
RENDER_SENT_HOLDS_SLOT = env.int("RENDER_SENT_HOLDS_SLOT", default=60)
RENDER_WORK_DIR = Path(env.str("RENDER_WORK_DIR", default=str(VAR_DIR / "work"))).resolve()
# Blender's own Python compiled once for this machine's renderers (renderhub/agent/bytecode.py):
# about half a second less at every sandboxed Blender start. Empty: compiled at each start.
RENDER_BYTECODE_DIR = env.str("RENDER_BYTECODE_DIR", default=str(VAR_DIR / "renderer-bytecode"))
# Each node's cache of scene files (RENDER_WORK_DIR/cache) is trimmed to this size, the
# longest-unused first; a job's staged scene goes once unused here for this many hours.
RENDER_CACHE_MAX_BYTES = env.int("RENDER_CACHE_MAX_BYTES", default=50 << 30)
RENDER_SCENE_KEEP_HOURS = env.float("RENDER_SCENE_KEEP_HOURS", default=12.0)
# Renderers run scenes and parameters that project members chose: in a bubblewrap sandbox
# (docs/SECURITY.md). "none" runs them unconfined, as the worker's user (trusted input only).
RENDER_SANDBOX = env.str("RENDER_SANDBOX", default="bwrap")
# Host folders a sandboxed renderer may read besides /usr and its scene (e.g. /opt/blender).
RENDER_SANDBOX_PATHS = env.list("RENDER_SANDBOX_PATHS", default=[])
# Per-process limits inside the sandbox: largest file a renderer may write, processes of
# the render user, address space (0: no limit; Cycles reserves much more than it uses).
RENDER_MAX_FILE_SIZE = env.int("RENDER_MAX_FILE_SIZE", default=16 << 30)
RENDER_MAX_PROCESSES = env.int("RENDER_MAX_PROCESSES", default=4096)
RENDER_MAX_MEMORY = env.int("RENDER_MAX_MEMORY", default=0)
# Scene facts read at submit (renderhub/blend/facts.py, docs/SUBMIT-CHECKS.md): the reader's
# time limit, the largest file (or unpacked size) and memory it may use, and the largest
# scene fetched from OSS to be read (larger ones are submitted unchecked, with a warning).
SCENE_FACTS_TIMEOUT = env.float("SCENE_FACTS_TIMEOUT", default=20.0)
SCENE_FACTS_MAX_BYTES = env.int("SCENE_FACTS_MAX_BYTES", default=4 << 30)
SCENE_FACTS_MAX_MEMORY = env.int("SCENE_FACTS_MAX_MEMORY", default=1 << 30)
SCENE_FACTS_MAX_DOWNLOAD = env.int("SCENE_FACTS_MAX_DOWNLOAD", default=512 << 20)
# A node whose last heartbeat is older than this is shown offline.
NODE_HEARTBEAT_SECONDS = env.int("NODE_HEARTBEAT_SECONDS", default=10)
NODE_OFFLINE_AFTER = env.int("NODE_OFFLINE_AFTER", default=60)
AUTO_DOWNLOAD = env.bool("AUTO_DOWNLOAD", default=True)
AUTO_DOWNLOAD_DIR = Path(env.str("AUTO_DOWNLOAD_DIR", default=str(VAR_DIR / "downloads"))).resolve()

BATCHCOMPUTE_REGION = env.str("BATCHCOMPUTE_REGION", default="")
BATCHCOMPUTE_ENDPOINT = env.str("BATCHCOMPUTE_ENDPOINT", default="")
BATCHCOMPUTE_ACCESS_KEY_ID = env.str("BATCHCOMPUTE_ACCESS_KEY_ID", default=OSS_ACCESS_KEY_ID)
BATCHCOMPUTE_ACCESS_KEY_SECRET = env.str(
    "BATCHCOMPUTE_ACCESS_KEY_SECRET", default=OSS_ACCESS_KEY_SECRET
)
BATCHCOMPUTE_TIMEOUT = env.float("BATCHCOMPUTE_TIMEOUT", default=20.0)  # seconds per call
BATCHCOMPUTE_RETRIES = env.int("BATCHCOMPUTE_RETRIES", default=3)  # on 5xx, throttling, network
BATCHCOMPUTE_MAX_INSTANCES = env.int("BATCHCOMPUTE_MAX_INSTANCES", default=1000)  # per cloud job
BATCHCOMPUTE_POLL_SECONDS = env.float("BATCHCOMPUTE_POLL_SECONDS", default=15.0)
BATCHCOMPUTE_POLL_PAGES = env.int("BATCHCOMPUTE_POLL_PAGES", default=2)  # instance pages/job/cycle
# Release (delete) ended cloud jobs: "always", "succeeded" (keep failed ones to inspect), "never".
BATCHCOMPUTE_RELEASE = env.str("BATCHCOMPUTE_RELEASE", default="succeeded")
BATCHCOMPUTE_RELEASE_AFTER = env.int("BATCHCOMPUTE_RELEASE_AFTER", default=3600)  # seconds
BATCHCOMPUTE_NODE_PYTHON = env.str("BATCHCOMPUTE_NODE_PYTHON", default="python3")
# OSS folder for the node package; empty: <output bucket>/renderhub-<tag>/packages/.
BATCHCOMPUTE_PACKAGE_URL = env.str("BATCHCOMPUTE_PACKAGE_URL", default="")

# --- Workflows (WDL) ------------------------------------------------------------------
# A Cromwell server's base URL (e.g. http://cromwell:8000) and an optional Authorization
# header value sent with every request (a secret: never shown or logged).
CROMWELL_URL = env.str("CROMWELL_URL", default="")
CROMWELL_AUTH_HEADER = env.str("CROMWELL_AUTH_HEADER", default="")
# Servers of projects' own, {"project name": "http://…"} (JSON): their runs go there and
# read its call cache. Runs on the shared CROMWELL_URL do not read its cache (another
# project's results could come back) unless CROMWELL_SHARED_CACHE says projects may share.
CROMWELL_PROJECT_URLS = env.json("CROMWELL_PROJECT_URLS", default={})
CROMWELL_SHARED_CACHE = env.bool("CROMWELL_SHARED_CACHE", default=False)
# miniwdl run directories and its call cache (cache entries point into the run dirs).
WORKFLOW_WORK_DIR = Path(env.str("WORKFLOW_WORK_DIR", default=str(VAR_DIR / "workflows"))).resolve()
# WDL task commands on the embedded miniwdl engine run in the same kind of sandbox as
# renderers; tasks get no network unless WORKFLOW_TASK_NETWORK is set.
WORKFLOW_SANDBOX = env.str("WORKFLOW_SANDBOX", default=RENDER_SANDBOX)
WORKFLOW_TASK_NETWORK = env.bool("WORKFLOW_TASK_NETWORK", default=False)
# Hosts whose https:// WDL imports the manager fetches at submission (e.g.
# raw.githubusercontent.com); empty: URL imports are refused. "http://host:port" allows
# plain http to that host. Each import is bounded in size (bytes) and time (seconds).
WORKFLOW_IMPORT_HOSTS = env.list("WORKFLOW_IMPORT_HOSTS", default=[])
WORKFLOW_IMPORT_MAX_BYTES = env.int("WORKFLOW_IMPORT_MAX_BYTES", default=1024 * 1024)
WORKFLOW_IMPORT_TIMEOUT = env.float("WORKFLOW_IMPORT_TIMEOUT", default=10.0)

# --- Celery ---------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport, writing each message whole before a reader can see it.
    CELERY_BROKER_TRANSPORT = "renderhub.fs_broker:Transport"
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.05,  # a listing of a near-empty folder: cheap, and 0.1 s sooner
    }
else:
    # An unacked render must not be handed to a second worker while it still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": RENDER_TIMEOUT + 3600}
CELERY_RESULT_BACKEND = "django-db"
CELERY_TASK_IGNORE_RESULT = True  # our rows are the source of truth
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_DEFAULT_QUEUE", default="renderhub")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Upserted into django-celery-beat's tables when beat starts; editable in the admin.
CELERY_BEAT_SCHEDULE = {
    "dispatch-pending-render-tasks": {"task": "jobs.tasks.dispatch_pending", "schedule": 10.0},
    "reap-stale-render-tasks": {
        "task": "jobs.tasks.reap_stale_tasks",
        "schedule": float(max(5, RENDER_STALE_AFTER // 2)),
    },
    "poll-workflow-runs": {"task": "workflows.tasks.poll_runs", "schedule": 10.0},
    "poll-batchcompute-jobs": {
        "task": "jobs.tasks.poll_cloud_jobs",
        "schedule": BATCHCOMPUTE_POLL_SECONDS,
    },
    "sync-batchcompute-clusters": {"task": "clusters.tasks.sync_clusters", "schedule": 60.0},
    "clean-stale-uploads": {"task": "projects.tasks.clean_stale_uploads", "schedule": 3600.0},
}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # oss2 logs every non-2xx answer (an expected 404 of an exists() included) at INFO;
        # renderhub.storage reports the failures that matter itself.
        "oss2": {"level": "WARNING"},
    },
}

# --- REST API (api app); webhooks and e-mail notifications (notifications app) -----------
INSTALLED_APPS += ["drf_spectacular_sidecar"]  # Swagger UI / Redoc files served locally, no CDN
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # enforces CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.PageNumberPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RenderHub API",
    "DESCRIPTION": "Render jobs, projects, clusters and software. "
    "Authenticate with `Authorization: Token <key>` (or `Bearer <key>`).",
    "VERSION": RENDERHUB_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}
# Passphrases that encrypt webhook secrets at rest; the first encrypts, all decrypt (rotation).
# Empty: derived from SECRET_KEY, so changing DJANGO_SECRET_KEY then needs the old one here.
WEBHOOK_ENCRYPTION_KEYS = env.list("WEBHOOK_ENCRYPTION_KEYS", default=[])
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_RETRY_BASE = env.float("WEBHOOK_RETRY_BASE", default=30.0)  # seconds, doubled per attempt
WEBHOOK_RETRY_MAX = env.float("WEBHOOK_RETRY_MAX", default=3600.0)
# http:// receivers on localhost only (always allowed with DJANGO_DEBUG); everything else https.
WEBHOOKS_ALLOW_HTTP_LOCALHOST = env.bool("WEBHOOKS_ALLOW_HTTP_LOCALHOST", default=False)
# Let webhooks reach private, loopback and link-local addresses (off: no SSRF into the LAN).
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default=False)
CELERY_BEAT_SCHEDULE["requeue-overdue-webhook-deliveries"] = {
    "task": "notifications.tasks.requeue_overdue_deliveries",
    "schedule": 60.0,
}
NOTIFY_BY_EMAIL = env.bool("NOTIFY_BY_EMAIL", default=True)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="RenderHub <renderhub@localhost>")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
# Links in e-mails, e.g. https://render.example.com (empty: no links).
RENDERHUB_SITE_URL = env.str("RENDERHUB_SITE_URL", default="").rstrip("/")
