"""Orders serving with the tutorial's Users client: the benchmarks' baseline, on the same servers.

The project has no setting for this (no benchmark plumbing in production code): this module
makes the swap in its own process, after Django is set up and before any request is served,
by replacing the one name Orders' selector calls Users with.

    gunicorn bench.tutorial_wsgi:application ...    # instead of project.wsgi:application
    python -m bench.tutorial_wsgi runserver ...     # instead of manage.py runserver

``bench/stack.py`` starts Orders so when given ``orders_app="bench.tutorial_wsgi"``.
"""

from __future__ import annotations

import sys

from project.wsgi import application  # Django set up first, as gunicorn would have it

__all__ = ["application"]


def use_tutorial_client() -> None:
    """Orders' selector calls the tutorial's ``user_get`` from now on, in this process."""
    import orders.selectors  # after the set-up: it imports models
    from bench import tutorial_client

    orders.selectors.user_get = tutorial_client.user_get


use_tutorial_client()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
