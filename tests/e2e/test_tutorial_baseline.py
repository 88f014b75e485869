"""The benchmarks' baseline really runs the tutorial's client, under both servers.

``bench/tutorial_wsgi.py`` swaps it in its own process (the project has no setting for it).
The tell: Users answers 500, which the tutorial's client does not retry and reports as
"User not found" (404), where this project's client answers a 5xx problem.
"""

from __future__ import annotations

from http import HTTPStatus

import pytest

from bench.stack import served_by

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("server", ["runserver", "gunicorn"])
def test_orders_served_by_tutorial_wsgi_uses_the_tutorials_client(stack, server):
    s = stack(server, orders_app="bench.tutorial_wsgi")
    assert s.get_orders(1)[0].status_code == HTTPStatus.OK
    s.manage("simulate_outage", "error", "--status", "500")
    response, _ = s.get_orders(1)
    assert response.status_code == HTTPStatus.NOT_FOUND, response.text
    assert response.json()["detail"] == "User not found: User API failed"


def test_served_by_replaces_each_servers_entry_point():
    gunicorn = ["python", "-m", "gunicorn", "project.wsgi:application", "--bind", "x"]
    runserver = ["python", "manage.py", "runserver", "127.0.0.1:1"]
    app = "bench.tutorial_wsgi"
    assert served_by(gunicorn, app) == [*gunicorn[:3], f"{app}:application", "--bind", "x"]
    assert served_by(runserver, app) == ["python", "-m", app, "runserver", "127.0.0.1:1"]
    with pytest.raises(ValueError, match="no entry point"):
        served_by(["python", "other.py"], app)
