"""Test settings: the project's settings with what a test run needs and a server must not.

Set before ``project.settings`` reads the environment, so the real code path (env vars
parsed once, in one place) is the one under test.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "insecure-key-for-tests-only")
os.environ.setdefault("OUTAGE_SIMULATION", "1")

from project.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not Django's shared-cache in-memory database: there, concurrent writers (the
    # live server's threads creating orders) get "database table is locked" at once
    # instead of waiting their turn; a file in WAL mode queues them as production does.
    import tempfile
    from pathlib import Path

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.gettempdir()) / f"resilient-tests-{os.getpid()}.sqlite3")
    }

# A second upstream, declared here only: tests/integration/test_second_upstream.py shows
# that one settings entry (and its PAYMENTS_* variables) gives it the whole behaviour.
from project.env import upstream_settings

UPSTREAMS = {
    **UPSTREAMS,  # noqa: F405
    "payments": upstream_settings("PAYMENTS", base_url="http://127.0.0.1:9"),
}

# The tests install an in-memory SDK of their own (tests/conftest.py), once per process.
OPENTELEMETRY = False
