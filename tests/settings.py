"""Test settings: the project's settings with what a test run needs and a server must not.

Set before ``project.settings`` reads the environment, so the real code path (env vars
parsed once, in one place) is the one under test.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "insecure-key-for-tests-only")
os.environ.setdefault("OUTAGE_SIMULATION", "1")

from project.settings import *  # noqa: F403
