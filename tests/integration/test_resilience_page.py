"""The resilience page's views with Django's client: who may see it, CSRF, validation, JSON."""

from __future__ import annotations

import os
import re
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from dashboard import faults
from resilient_http.live import RECORDER
from resilient_http.registry import upstream
from users.models import Outage

pytestmark = pytest.mark.django_db

PAGE, STATE, START, CLEAR = (
    "/resilience/",
    "/resilience/state.json",
    "/resilience/fault/",
    "/resilience/fault/clear/",
)


@pytest.fixture(autouse=True)
def _fresh_recorder():
    RECORDER.clear()
    yield
    RECORDER.clear()


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_user("ops", password="x", is_staff=True)  # noqa: S106
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_post(client: Client, url: str, data: dict[str, str]):
    """POST as the page does: with the token its form carries."""
    client.get(PAGE)
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


# -- who may see it -----------------------------------------------------------------------


def test_in_production_a_stranger_is_sent_to_the_admin_login(client, settings):
    settings.DEBUG = False
    response = client.get(PAGE)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/admin/login/?next=/resilience/"


@pytest.mark.parametrize(("method", "url"), [("get", STATE), ("post", START), ("post", CLEAR)])
def test_in_production_strangers_get_403_from_the_api(client, settings, method, url):
    settings.DEBUG = False
    Outage.objects.all().delete()
    response = getattr(client, method)(url, {"mode": "error", "value": "502"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not Outage.objects.exists()


def test_in_production_a_logged_in_non_staff_user_gets_403(client, settings):
    settings.DEBUG = False
    client.force_login(get_user_model().objects.create_user("shopper"))
    assert client.get(PAGE).status_code == HTTPStatus.FORBIDDEN
    assert client.get(STATE).status_code == HTTPStatus.FORBIDDEN


def test_in_production_staff_see_the_page(staff, settings):
    settings.DEBUG = False
    response = staff.get(PAGE)
    assert response.status_code == HTTPStatus.OK
    assert b"Resilience, live" in response.content
    assert staff.get(STATE).status_code == HTTPStatus.OK


def test_an_inactive_staff_user_is_refused(staff, settings):
    settings.DEBUG = False
    get_user_model().objects.filter(username="ops").update(is_active=False)
    assert staff.get(STATE).status_code != HTTPStatus.OK


def test_in_development_anyone_sees_it(client, settings):
    settings.DEBUG = True
    assert client.get(PAGE).status_code == HTTPStatus.OK
    assert client.get(STATE).status_code == HTTPStatus.OK


# -- the page and its JSON ----------------------------------------------------------------


def test_every_fault_mode_has_a_control_with_its_main_argument(staff):
    html = staff.get(PAGE).content.decode()
    for mode in Outage.Mode.values:
        assert f'data-mode="{mode}"' in html
    assert 'aria-label="error --status"' in html
    assert 'aria-label="drip --interval"' in html
    assert "resilient_http/upstreams.js" in html
    assert "dashboard/faults.js" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no CDN: works offline


@pytest.mark.parametrize("mode", Outage.Mode.values)
def test_every_fault_mode_starts_from_the_page_with_its_default_argument(staff, mode):
    """What the page draws, submitted as drawn, starts that fault: no control is a dead end."""
    control = next(m for m in faults.fault_modes() if m["mode"] == mode)
    value = control["argument"]["default"] if control["argument"] else ""
    response = csrf_post(staff, START, {"mode": mode, "value": value})
    assert response.status_code == HTTPStatus.OK, response.content
    assert Outage.objects.get().mode == mode


def test_a_mode_missing_from_the_table_still_gets_a_control_without_argument(monkeypatch):
    """A new mode (another engineer's) appears by itself, with no argument until it has one."""
    monkeypatch.setattr(faults, "MAIN_ARGUMENT", {"error": faults.MAIN_ARGUMENT["error"]})
    modes = {m["mode"]: m["argument"] for m in faults.fault_modes()}
    assert set(modes) == set(Outage.Mode.values)
    assert modes["slow"] is None
    assert modes["error"]["flag"] == "--status"


def test_without_outage_simulation_there_are_no_start_controls(staff, settings):
    settings.OUTAGE_SIMULATION = False
    html = staff.get(PAGE).content.decode()
    assert 'data-mode="error"' not in html
    assert "Outage simulation is off here" in html


def test_state_lists_each_configured_upstream_with_breaker_and_budget(staff, settings):
    """A second upstream in settings appears by itself, with its own breaker and limit."""
    payments = {"name": "payments", "base_url": "http://127.0.0.1:9", "max_concurrency": 4}
    settings.UPSTREAMS = {**settings.UPSTREAMS, "payments": payments}
    data = staff.get(STATE).json()
    assert data["pid"] == os.getpid()  # whose breaker this is, with several workers
    users, payments = data["upstreams"]
    assert users["name"] == "users"
    assert users["breaker"]["state"] == "closed"
    assert users["breaker"]["next_probe"] == 0
    assert users["budget"]["available"] == pytest.approx(30.0)
    assert users["in_flight"] == 0
    assert users["concurrency_limit"] == 16
    assert users["calls"] == []
    assert payments["name"] == "payments"
    assert payments["base_url"] == "http://127.0.0.1:9"
    assert payments["breaker"]["state"] == "closed"
    assert payments["concurrency_limit"] == 4
    assert payments["calls"] == []
    assert data["fault"] is None
    assert data["simulation"] is True


def test_state_shows_a_real_call_through_orders(staff, users_upstream, orders_client):
    """Orders calls Users over real HTTP (live_server): the call is on the page's JSON."""
    call_command("simulate_outage", "fail-next", "1")
    assert orders_client.get("/orders/?user_id=1").status_code == HTTPStatus.OK
    [row] = staff.get(STATE).json()["upstreams"][0]["calls"]
    assert row["path"] == "/users/1"
    assert row["result"] == "succeeded"
    assert [a["outcome"] for a in row["attempts"]] == ["502", "200"]
    assert row["attempts"][0]["wait"] is not None
    assert row["deadline"] == pytest.approx(3.0, abs=0.1)


def test_the_pages_budget_is_the_budgets_own_when_the_breaker_opens_in_a_backoff(
    staff, users_upstream, orders_client, monkeypatch
):
    """The breaker opens while a call waits to retry: the retry is not sent and its token
    goes back. The page reads the budget itself, so it shows no retry (rebuilt from events,
    it once showed one beside a budget that held none)."""
    call_command("simulate_outage", "fail-next", "1")  # Users' one 502, then it would serve
    manager = upstream("users")

    def others_fail_meanwhile(seconds: float) -> None:
        for _ in range(manager.breaker.consecutive_failures):
            manager.breaker.record(success=False)

    monkeypatch.setattr(manager, "_sleep", others_fail_meanwhile)
    assert orders_client.get("/orders/?user_id=1").status_code == HTTPStatus.SERVICE_UNAVAILABLE
    users = staff.get(STATE).json()["upstreams"][0]
    assert users["breaker"]["state"] == "open"
    assert (users["budget"]["recent_requests"], users["budget"]["recent_retries"]) == (1, 0)
    assert users["budget"]["available"] == round(manager.budget.available(), 2)
    [row] = users["calls"]
    assert [a["outcome"] for a in row["attempts"]] == ["502"]
    assert row["cause"] == "the circuit opened meanwhile (other calls failed)"


def test_state_shows_the_fault_its_time_left_and_hits(staff):
    call_command("simulate_outage", "error", "--status", "503", "--for", "60")
    Outage.objects.update(hits=7)
    fault = staff.get(STATE).json()["fault"]
    assert fault["mode"] == "error"
    assert fault["active"] is True
    assert fault["hits"] == 7
    assert 0 < fault["time_left"] <= 60
    assert fault["description"].startswith("Simulated outage active: error 503")


# -- the controls: CSRF and the command's validation --------------------------------------


def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(staff):
    response = staff.post(START, {"mode": "error", "value": "502"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not Outage.objects.exists()
    call_command("simulate_outage", "error")
    assert staff.post(CLEAR).status_code == HTTPStatus.FORBIDDEN
    assert Outage.objects.exists()


def test_start_and_clear_with_the_token(staff):
    response = csrf_post(staff, START, {"mode": "slow", "value": "2.5", "for": "30"})
    assert response.status_code == HTTPStatus.OK
    assert response.json()["message"].startswith("Simulated outage active: slow, 2.5 s delay")
    outage = Outage.objects.get()
    assert (outage.mode, outage.delay, outage.expires_at is not None) == ("slow", 2.5, True)
    assert csrf_post(staff, CLEAR, {}).json() == {"ok": True, "message": "Cleared."}
    assert not Outage.objects.exists()
    assert csrf_post(staff, CLEAR, {}).json()["message"] == "Nothing to clear."


@pytest.mark.parametrize(
    ("form", "argv"),
    [
        ({"mode": "error", "value": "200"}, ["error", "--status", "200"]),
        ({"mode": "error", "value": "502", "for": "-1"}, ["error", "--for", "-1"]),
        ({"mode": "slow", "value": "0"}, ["slow", "--delay", "0"]),
        ({"mode": "fail-next", "value": "0"}, ["fail-next", "0"]),
        ({"mode": "drip", "value": "-2"}, ["drip", "--interval", "-2"]),
    ],
)
def test_invalid_faults_get_the_commands_own_error_and_write_nothing(staff, form, argv):
    with pytest.raises(CommandError) as command:
        call_command("simulate_outage", *argv)
    response = csrf_post(staff, START, form)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "; ".join(response.json()["errors"]) == str(command.value)
    assert not Outage.objects.exists()


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"mode": "error", "value": "abc"}, "argument --status: invalid int value: 'abc'"),
        ({"mode": "slow", "value": "nan"}, "argument --delay: 'nan' is not a finite number"),
        ({"mode": "error", "value": "502", "for": "soon"}, "argument --for: 'soon' is not"),
        ({"mode": "fail-next", "value": ""}, "fail-next needs N"),
        ({"mode": "reboot"}, "unknown mode 'reboot'; choose one of error, slow"),
    ],
)
def test_unparseable_input_is_an_error_on_the_page_and_writes_nothing(staff, form, error):
    response = csrf_post(staff, START, form)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert any(e.startswith(error) for e in response.json()["errors"]), response.json()
    assert not Outage.objects.exists()


@pytest.mark.parametrize(
    ("form", "argv"),
    [
        ({"mode": "fail-next", "value": "1e30"}, ["fail-next", "1e30"]),
        ({"mode": "fail-next", "value": "1" + "0" * 30}, ["fail-next", "1" + "0" * 30]),
        ({"mode": "fail-next", "value": "\u00b2"}, ["fail-next", "\u00b2"]),
        ({"mode": "fail-next", "value": "\u0661\u0662"}, ["fail-next", "\u0661\u0662"]),
        ({"mode": "error", "value": "502", "for": "1e15"}, ["error", "--for", "1e15"]),
        ({"mode": "error", "value": "502", "for": "\u0661"}, ["error", "--for", "\u0661"]),
        ({"mode": "truncate", "value": "1e20"}, ["truncate", "--bytes", "1e20"]),
        ({"mode": "truncate", "value": "9" * 20}, ["truncate", "--bytes", "9" * 20]),
        ({"mode": "slow", "value": "1e308"}, ["slow", "--delay", "1e308"]),
        ({"mode": "drip", "value": "3601"}, ["drip", "--interval", "3601"]),
        ({"mode": "error", "value": "9" * 30}, ["error", "--status", "9" * 30]),
        (
            {"mode": "slow-bytes", "value": "1000000001"},
            ["slow-bytes", "--bytes-per-second", "1000000001"],
        ),
        ({"mode": "reset", "value": "\u00b2"}, ["reset", "--after-bytes", "\u00b2"]),
    ],
)
def test_out_of_bounds_values_are_a_400_with_the_commands_message_and_change_nothing(
    staff, form, argv
):
    call_command("simulate_outage", "error", "--status", "503")
    before = Outage.objects.values().get()
    with pytest.raises(CommandError) as command:
        call_command("simulate_outage", *argv)
    response = csrf_post(staff, START, form)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "; ".join(response.json()["errors"]) == str(command.value)
    assert Outage.objects.values().get() == before


def test_without_outage_simulation_starting_is_refused_as_the_command_does(staff, settings):
    settings.OUTAGE_SIMULATION = False
    with pytest.raises(CommandError) as command:
        call_command("simulate_outage", "error")
    response = csrf_post(staff, START, {"mode": "error", "value": "502"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["errors"] == [str(command.value)]
    assert not Outage.objects.exists()


# -- several Users replicas ------------------------------------------------------------


def test_with_several_replicas_the_page_offers_a_target_and_with_one_it_does_not(staff, settings):
    assert 'id="fault-target"' not in staff.get(PAGE).content.decode()
    settings.USERS_REPLICAS = 3
    page = staff.get(PAGE).content.decode()
    assert re.findall(r'<option value="(\w+)">', page) == ["all", "1", "2", "3"]
    assert staff.get(STATE).json()["replicas"] == 3


def test_a_fault_for_one_replica_from_the_page_and_the_state_names_each_target(staff):
    call_command("simulate_outage", "error", "--status", "503")
    response = csrf_post(staff, START, {"mode": "down", "target": "2"})
    assert response.status_code == HTTPStatus.OK
    assert response.json()["message"].startswith("Replica 2: Simulated outage active: down")
    state = staff.get(STATE).json()
    assert [(f["target"], f["mode"]) for f in state["faults"]] == [("all", "error"), (2, "down")]
    assert state["faults"][0]["description"].startswith("All replicas: Simulated outage")
    assert state["fault"]["description"].startswith("Simulated outage active: error 503")
    assert csrf_post(staff, START, {"mode": "hang", "target": "all"}).status_code == 200
    assert [f["target"] for f in staff.get(STATE).json()["faults"]] == ["all"]


def test_clear_from_the_page_for_one_replica_or_all(staff):
    call_command("simulate_outage", "error")
    call_command("simulate_outage", "--replica", "2", "down")
    assert csrf_post(staff, CLEAR, {"target": "2"}).json()["message"] == "Cleared."
    assert list(Outage.objects.values_list("replica", flat=True)) == [None]
    assert csrf_post(staff, CLEAR, {"target": "all"}).json()["message"] == "Cleared."
    assert not Outage.objects.exists()


@pytest.mark.parametrize("target", ["0", "100", "\u00b2", "two"])
@pytest.mark.parametrize("url", [START, CLEAR])
def test_a_bad_target_is_a_400_with_the_commands_message_and_changes_nothing(staff, target, url):
    call_command("simulate_outage", "--replica", "2", "hang")
    with pytest.raises(CommandError) as command:
        call_command("simulate_outage", "--replica", target, "clear")
    response = csrf_post(staff, url, {"mode": "error", "value": "502", "target": target})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["errors"] == [str(command.value)]
    assert list(Outage.objects.values_list("replica", "mode")) == [(2, "hang")]
