"""Settings of the test site, driven by environment variables.

TESTSITE_DEBUG             "1" turns DEBUG on (default off, as in production)
TESTSITE_PROPAGATE         "0" lets Django render its own 500 page; by default
                           exceptions propagate to the WSGI gateway so that its
                           error handling is what gets exercised
TESTSITE_DB_DIR            when set, an sqlite database is kept in that directory;
                           otherwise the site runs without a database
TESTSITE_SECRET_KEY        secret key (a fixed test key by default)
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("TESTSITE_SECRET_KEY", "testsite-insecure-key-for-tests-only")
DEBUG = os.environ.get("TESTSITE_DEBUG", "0") == "1"
DEBUG_PROPAGATE_EXCEPTIONS = os.environ.get("TESTSITE_PROPAGATE", "1") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "testsite",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]

ROOT_URLCONF = "testsite.urls"
WSGI_APPLICATION = "testsite.wsgi.application"
APPEND_SLASH = False

_db_dir = os.environ.get("TESTSITE_DB_DIR")
if _db_dir:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(Path(_db_dir) / "testsite.sqlite3"),
        }
    }
else:
    DATABASES = {}

# Small bodies only through request.body / request.POST; the upload view
# streams from the request instead.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
