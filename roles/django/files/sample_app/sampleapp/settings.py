"""Settings for the sample app.

Everything that differs between deployments is read from environment
variables; the deployment writes them to an env file that is loaded into
``os.environ`` before Django starts.
"""

import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# The oldest SQLite each Django series accepts, newest series first.
SQLITE_MINIMUM = [
    ((5, 1), (3, 31, 0)),
    ((5, 0), (3, 27, 0)),
    ((4, 2), (3, 21, 0)),
    ((3, 2), (3, 9, 0)),
]


def use_pysqlite3_if_needed():
    """Run on pysqlite3's own SQLite when the system's is too old for Django.

    CentOS 7 ships SQLite 3.7.17, older than any supported Django accepts;
    requirements.txt installs pysqlite3-binary on the Pythons found there.
    The swap must happen before Django loads its SQLite backend, which
    imports ``sqlite3``. Where the system's SQLite is new enough, or
    pysqlite3 is missing, nothing changes (and Django reports an old SQLite
    itself). Returns the SQLite version the app will use.
    """
    import sqlite3

    needed = next((sqlite for series, sqlite in SQLITE_MINIMUM if django.VERSION[:2] >= series), (0,))
    if sqlite3.sqlite_version_info >= needed:
        return sqlite3.sqlite_version
    try:
        import pysqlite3.dbapi2
    except ImportError:
        return sqlite3.sqlite_version
    sys.modules["sqlite3"] = pysqlite3
    sys.modules["sqlite3.dbapi2"] = pysqlite3.dbapi2
    return pysqlite3.dbapi2.sqlite_version


SQLITE_VERSION = use_pysqlite3_if_needed()


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name):
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured("The DJANGO_SECRET_KEY environment variable is required.")

DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "notes",
]

# Sessions live in the database, so a login holds whichever app host serves
# the next request.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "whoami"

ROOT_URLCONF = "sampleapp.urls"
WSGI_APPLICATION = "sampleapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
            ],
        },
    },
]

ENGINES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
}


def database_from_url(url):
    """Django's DATABASES entry for a DATABASE_URL: sqlite:////absolute/path
    or postgres://user:password@host:port/name?option=value. A PostgreSQL
    URL may leave the password out; libpq then reads it from PGPASSFILE."""
    parts = urlsplit(url)
    if parts.scheme not in ENGINES:
        raise ImproperlyConfigured(f"DATABASE_URL: unknown scheme {parts.scheme!r} (use {', '.join(ENGINES)})")
    if parts.scheme == "sqlite":
        if not parts.path.startswith("//"):
            raise ImproperlyConfigured("DATABASE_URL: a SQLite URL names an absolute path, sqlite:////path/to/db")
        # Several WSGI processes may write at once; wait for the lock.
        return {"ENGINE": ENGINES["sqlite"], "NAME": Path(parts.path[1:]), "OPTIONS": {"timeout": 20}}
    return {
        "ENGINE": ENGINES[parts.scheme],
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": dict(parse_qsl(parts.query)),
    }


DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL")
        or "sqlite:///" + str(Path(os.environ.get("DJANGO_DB_PATH") or BASE_DIR / "db.sqlite3"))
    )
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = os.environ.get("DJANGO_STATIC_URL") or "/static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
MEDIA_URL = os.environ.get("DJANGO_MEDIA_URL") or "/media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT") or BASE_DIR / "media")

SECURE_SSL = env_bool("DJANGO_SECURE_SSL")
if SECURE_SSL:
    # Apache ends TLS and tells the app through the WSGI environ
    # (wsgi.url_scheme https), so no proxy header is trusted here.
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # HSTS stays off until the site opts in (the apache role's HSTS switch
    # sets DJANGO_SECURE_HSTS_SECONDS): once browsers have seen it, the site
    # cannot go back to plain HTTP before it expires.
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS") or 0)
    # HSTS for every subdomain, and a request to be preloaded into browsers,
    # bind the whole domain for a year: that is the domain owner's call, not
    # the app's, so the two checks that ask for them stay quiet.
    SILENCED_SYSTEM_CHECKS = [
        "security.W005",  # SECURE_HSTS_INCLUDE_SUBDOMAINS
        "security.W021",  # SECURE_HSTS_PRELOAD
    ]
    if not SECURE_HSTS_SECONDS:
        SILENCED_SYSTEM_CHECKS.append("security.W004")  # SECURE_HSTS_SECONDS, not opted in
else:
    # The site is served over plain HTTP until TLS is configured, so the
    # HTTPS-only settings (HSTS, SSL redirect, secure cookies) stay off and
    # the deploy checks that ask for them are silenced. Setting
    # DJANGO_SECURE_SSL turns the settings on and the checks back on.
    SILENCED_SYSTEM_CHECKS = [
        "security.W004",  # SECURE_HSTS_SECONDS
        "security.W008",  # SECURE_SSL_REDIRECT
        "security.W012",  # SESSION_COOKIE_SECURE
        "security.W016",  # CSRF_COOKIE_SECURE
    ]

# Log to stderr, which mod_wsgi and friends send to Apache's error log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "[%(levelname)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
