"""Development settings: what ``manage.py`` runs with unless ``DJANGO_SETTINGS_MODULE`` says
otherwise (cookiecutter-django's split: ``manage.py`` local, the WSGI entry point production).

So ``manage.py simulate_outage``, ``createsuperuser`` or ``runserver`` work when pasted into
a fresh shell, while gunicorn (``project.wsgi``, ``make serve``) still refuses to start
without a secret key. A deployment sets ``DJANGO_SETTINGS_MODULE=project.settings`` for its
``manage.py`` runs too (``migrate``, ``check --deploy``). Anything in the environment wins.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")

from project.settings import *  # noqa: F403
