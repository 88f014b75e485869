#!/usr/bin/env python
"""Django's command-line utility: development settings unless told otherwise.

A configuration mistake (a malformed variable, a database that is not there or not
migrated) is one line on stderr and exit status 1, not a traceback; ``--traceback``
shows the whole story.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_dev")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import DatabaseError

    try:
        execute_from_command_line(sys.argv)
    except (ImproperlyConfigured, DatabaseError) as exc:
        if "--traceback" in sys.argv:
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            " (is DATABASE_URL right, and the database migrated? `make setup` migrates it)"
            if isinstance(exc, DatabaseError)
            else ""
        )
        sys.exit(f"{type(exc).__name__}: {first_line}{hint}")


if __name__ == "__main__":
    main()
