"""WSGI entry point: ``testsite.wsgi:application``.

The callable is Django's WSGI handler behind a one-line wrapper that keeps the
environ values the gateway passed (Django overwrites ``META['PATH_INFO']`` and
``META['SCRIPT_NAME']`` with decoded text), so the echo view can show exactly
what the gateway produced.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.settings")

_django_application = get_wsgi_application()
_RAW_KEYS = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_URI")


def application(environ, start_response):
    environ["testsite.raw_environ"] = {key: environ.get(key) for key in _RAW_KEYS}
    return _django_application(environ, start_response)
