"""WSGI entry point for gunicorn (``make serve``): production settings unless told otherwise.

A configuration mistake (no secret key, a malformed variable) stops the server with one
line, not a traceback per worker: exit status 4 is gunicorn's "App failed to load", on
which its arbiter stops instead of respawning workers that would fail the same way.
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

APP_LOAD_ERROR = 4  # gunicorn.arbiter.Arbiter.APP_LOAD_ERROR

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
try:
    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    print(f"ImproperlyConfigured: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(APP_LOAD_ERROR) from None
