"""bench/stack.py's processes: stopping one stops everything it started."""

from __future__ import annotations

import sys

import pytest

from bench.stack import Service, base_env, free_port, refuses, wait_until

pytestmark = pytest.mark.e2e

# A parent that starts a server of its own and then just waits: what gunicorn's master and
# worker, or runserver's reloader and its child, look like from outside.
PARENT = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-m', 'http.server', sys.argv[1], '--bind', '127.0.0.1'],"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    "time.sleep(300)"
)


def test_stop_ends_the_whole_process_group_children_included(tmp_path):
    port = free_port()
    argv = [sys.executable, "-c", PARENT, str(port)]
    service = Service("parent", base_env(), tmp_path, port, argv=argv).start()
    service.stop()
    # The child served the port; with the parent alone signalled it would serve on.
    wait_until(lambda: refuses(port), "the child's port to close")
