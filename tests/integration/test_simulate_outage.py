"""``manage.py simulate_outage``: arguments, state, expiry, and refusing bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from users.models import Outage
from users.outages import outage_active, outage_is_active

pytestmark = pytest.mark.django_db


def run(*args: str, **options: object) -> str:
    out = StringIO()
    call_command("simulate_outage", *args, stdout=out, **options)
    return out.getvalue()


def stored() -> Outage | None:
    return Outage.objects.filter(pk=Outage.SINGLETON).first()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["error"], {"mode": "error", "status": 502, "rate": 1.0, "retry_after": None}),
        (
            ["error", "--status", "503", "--retry-after", "5", "--rate", "0.3"],
            {"status": 503, "retry_after": 5, "rate": 0.3},
        ),
        (["slow", "--delay", "2.5"], {"mode": "slow", "delay": 2.5}),
        (
            ["fail-next", "3", "--status", "504"],
            {"mode": "fail-next", "remaining": 3, "status": 504},
        ),
        (["drip", "--interval", "0.2"], {"mode": "drip", "delay": 0.2}),
        (["down", "--for", "10"], {"mode": "down", "rate": 1.0, "size": None}),
        (["reset"], {"mode": "reset", "size": 0}),
        (["reset", "--after-bytes", "20", "--rate", "0.5"], {"size": 20, "rate": 0.5}),
        (["hang", "--rate", "0.25"], {"mode": "hang", "rate": 0.25}),
        (["truncate", "--bytes", "0"], {"mode": "truncate", "size": 0}),
        (["slow-bytes", "--bytes-per-second", "50"], {"mode": "slow-bytes", "size": 50}),
    ],
)
def test_each_mode_stores_its_fault(args, expected):
    run(*args)
    fault = stored()
    assert fault is not None
    for field, value in expected.items():
        assert getattr(fault, field) == value


def test_a_new_fault_replaces_the_old_one():
    run("error")
    run("slow", "--delay", "1")
    assert Outage.objects.count() == 1
    assert stored().mode == "slow"


def test_for_stores_an_expiry_and_the_fault_ends_by_itself():
    run("error", "--for", "30")
    fault = stored()
    assert fault.expires_at is not None
    assert outage_is_active(fault, now=fault.expires_at - timedelta(seconds=1))
    assert not outage_is_active(fault, now=fault.expires_at)


def test_expired_fault_is_not_served():
    run("error", "--for", "30")
    Outage.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert outage_active() is None


def test_status_reports_mode_time_left_and_hits(client):
    assert "No simulated outage" in run("status")
    run("error", "--status", "503", "--for", "60")
    client.get("/users/1")
    client.get("/users/2")
    report = run("status")
    assert "error 503" in report
    assert "s left" in report
    assert "2 request(s) hit" in report


def test_fail_next_heals_after_n_requests(client):
    run("fail-next", "2")
    assert [client.get("/users/1").status_code for _ in range(4)] == [502, 502, 200, 200]
    assert "ended" in run("status")


def test_clear_ends_the_fault(client):
    run("error")
    assert "Cleared" in run("clear")
    assert stored() is None
    assert client.get("/users/1").status_code == 200
    assert "Nothing to clear" in run("clear")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explode"], "invalid choice"),
        ([], "MODE"),
        (["slow", "--delay", "-1"], "must not be negative"),
        (["slow", "--delay", "0"], "positive"),
        (["slow"], "--delay"),
        (["slow", "--delay", "soon"], "not a number of seconds"),
        (["slow", "--delay", "nan"], "finite"),
        (["error", "--rate", "1.5"], "between 0 and 1"),
        (["error", "--rate", "-0.1"], "between 0 and 1"),
        (["error", "--status", "200"], "400..599"),
        (["error", "--status", "600"], "400..599"),
        (["error", "--retry-after", "-3"], "must not be negative"),
        (["fail-next", "0"], "at least 1"),
        (["fail-next", "many"], "invalid int"),
        (["drip", "--interval", "0"], "positive"),
        (["error", "--for", "0"], "positive"),
        (["down", "--rate", "0.5"], "unrecognized arguments: --rate"),
        (["reset", "--after-bytes", "-1"], "must not be negative"),
        (["reset", "--after-bytes", "lots"], "invalid int"),
        (["hang", "--rate", "2"], "between 0 and 1"),
        (["truncate"], "--bytes"),
        (["truncate", "--bytes", "-5"], "must not be negative"),
        (["slow-bytes"], "--bytes-per-second"),
        (["slow-bytes", "--bytes-per-second", "0"], "at least 1"),
        (["slow-bytes", "--bytes-per-second", "-1"], "at least 1"),
        (["hang", "--for", "-1"], "positive"),
    ],
)
def test_bad_arguments_are_a_clear_command_error_and_write_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert stored() is None


#: Values that once overflowed a timedelta, time.sleep or the database column, or that
#: int()/float() would take although they are not plain ASCII numbers.
OUT_OF_BOUNDS = [
    (["fail-next", "1e30"], "argument N: invalid int value: '1e30'"),
    (["fail-next", "1" + "0" * 30], "fail-next's count must be at most 1,000,000"),
    (["fail-next", "1000001"], "fail-next's count must be at most 1,000,000"),
    (["fail-next", "\u00b2"], "argument N: invalid int value: '\u00b2'"),
    (["fail-next", "\u0661\u0662"], "argument N: invalid int value"),  # Arabic-Indic 12
    (["fail-next", "1_0"], "argument N: invalid int value: '1_0'"),
    (["error", "--for", "1e15"], "--for must be at most 86,400 s (a day); got 1e+15"),
    (["error", "--for", "86401"], "--for must be at most 86,400 s"),
    (["error", "--for", "1e999"], "argument --for: '1e999' is not a finite number"),
    (["error", "--for", "\u0661"], "argument --for: '\u0661' is not a number of seconds"),
    (["truncate", "--bytes", "1e20"], "argument --bytes: invalid int value: '1e20'"),
    (["truncate", "--bytes", "1" + "0" * 20], "a byte count must be at most 1,000,000,000"),
    (["reset", "--after-bytes", "2147483648"], "a byte count must be at most"),
    (["slow-bytes", "--bytes-per-second", "1000000001"], "a byte count must be at most"),
    (["slow", "--delay", "1e308"], "the delay/interval must be at most 3,600 s (an hour)"),
    (["slow", "--delay", "3600.5"], "the delay/interval must be at most 3,600 s"),
    (["drip", "--interval", "1e9"], "the delay/interval must be at most 3,600 s"),
    (["error", "--status", "9" * 30], "400..599"),
    (["error", "--status", "\u00b2"], "argument --status: invalid int value"),
    (["error", "--retry-after", "86401"], "--retry-after must be at most 86,400 s"),
    (["error", "--retry-after", "1e5"], "argument --retry-after: invalid int value"),
    (["error", "--rate", "\u00bd"], "argument --rate: invalid float value"),
    (["error", "--rate", "nan"], "argument --rate: invalid float value: 'nan'"),
]


@pytest.mark.parametrize(("args", "message"), OUT_OF_BOUNDS)
def test_out_of_bounds_values_are_one_command_error_line_and_change_nothing(args, message):
    run("error", "--status", "503")
    before = Outage.objects.values().get()
    with pytest.raises(CommandError) as raised:
        run(*args)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert Outage.objects.values().get() == before


@pytest.mark.parametrize(
    "args",
    [
        ["slow", "--delay", "3600"],
        ["error", "--for", "86400", "--retry-after", "86400"],
        ["fail-next", "1000000"],
        ["truncate", "--bytes", "1000000000"],
        ["error", "--status", " 503 "],
    ],
)
def test_the_largest_allowed_values_are_accepted(args):
    run(*args)
    assert stored().mode == args[0]


def test_from_a_terminal_a_bad_number_is_one_line_without_usage():
    """Run as a person runs it: the message, no argparse usage block, no traceback."""
    done = subprocess.run(
        [sys.executable, "manage.py", "simulate_outage", "fail-next", "1e30"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings_dev"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "CommandError: argument N: invalid int value: '1e30'\n"


def test_bad_arguments_leave_an_existing_fault_alone():
    run("error", "--status", "503")
    with pytest.raises(CommandError):
        run("error", "--rate", "7")
    assert stored().status == 503


def test_refused_where_simulation_is_off(settings):
    settings.OUTAGE_SIMULATION = False
    with pytest.raises(CommandError, match="OUTAGE_SIMULATION=1"):
        run("error")
    assert stored() is None
    assert "No simulated outage" in run("status")


def test_verbosity_zero_is_silent_but_still_acts():
    assert run("error", verbosity=0) == ""
    assert stored() is not None
    assert run("clear", verbosity=0) == ""
    assert stored() is None


def test_a_command_error_is_one_line(capsys):
    """What a person sees in a terminal: the message, no traceback."""
    with pytest.raises(CommandError) as raised:
        run("slow-bytes", "--bytes-per-second", "0")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("args", "summary"),
    [
        (["down"], "down, connections refused (through the fault proxy)"),
        (["reset"], "reset once the request has reached Users"),
        (["reset", "--after-bytes", "9"], "reset after 9 response byte(s)"),
        (["hang"], "hang, requests read and never answered"),
        (["truncate", "--bytes", "7"], "truncate, responses cut after 7 byte(s)"),
        (["slow-bytes", "--bytes-per-second", "3"], "responses sent at 3 byte(s)/s"),
    ],
)
def test_status_names_each_transport_fault(args, summary):
    run(*args)
    assert summary in run("status")


def test_down_says_refusals_are_not_counted():
    run("down")
    assert "refused connections are not counted" in run("status")


def test_users_itself_ignores_transport_faults(client):
    """Users' own port stays healthy: the fault proxy in front of it serves these."""
    for args in (["down"], ["reset"], ["hang"], ["truncate", "--bytes", "0"]):
        run(*args)
        assert client.get("/users/1").status_code == 200
    assert stored().hits == 0


# -- several Users replicas ------------------------------------------------------------


def faults() -> dict[int | None, str]:
    """Every stored fault: its target (``None``: all replicas) -> its mode."""
    return {o.replica: o.mode for o in Outage.objects.order_by("pk")}


def test_a_fault_for_one_replica_leaves_the_others_and_says_whom_it_hits():
    run("error")
    assert run("--replica", "2", "error", "--status", "503") == (
        "Replica 2: Simulated outage active: error 503; until cleared; 0 request(s) hit.\n"
    )
    run("--replica", "3", "hang")
    run("--replica", "2", "slow", "--delay", "1")  # replaces replica 2's only
    assert faults() == {None: "error", 2: "slow", 3: "hang"}


def test_a_fault_for_all_replaces_every_fault():
    run("--replica", "2", "error")
    run("--replica", "3", "down")
    run("slow", "--delay", "1")
    assert faults() == {None: "slow"}
    assert stored().mode == "slow"  # the row it always was


def test_status_lists_every_fault_with_its_target_and_one_line_for_one_fault():
    run("error", "--status", "503")
    assert run("status") == (
        "Simulated outage active: error 503; until cleared; 0 request(s) hit.\n"
    )
    run("--replica", "2", "down")
    assert run("status").splitlines() == [
        "All replicas: Simulated outage active: error 503; until cleared; 0 request(s) hit.",
        "Replica 2: Simulated outage active: down, connections refused (through the fault"
        " proxy); until cleared; refused connections are not counted.",
    ]
    assert run("--replica", "2", "status").startswith("Replica 2: Simulated outage active: down")
    assert run("--replica", "3", "status").startswith("Replica 3: Simulated outage active: error")


def test_clear_clears_every_fault_and_replica_clear_only_its_own():
    run("error")
    run("--replica", "2", "down")
    run("--replica", "3", "hang")
    assert run("--replica", "2", "clear") == "Cleared.\n"
    assert faults() == {None: "error", 3: "hang"}
    assert run("--replica", "2", "clear") == "Nothing to clear.\n"
    assert run("clear") == "Cleared.\n"
    assert faults() == {}


@pytest.mark.parametrize(
    ("replica", "message"),
    [
        ("0", "--replica must be a replica number, 1..99; got 0"),
        ("100", "--replica must be a replica number, 1..99; got 100"),
        ("\u00b2", "argument --replica: invalid int value: '\u00b2'"),
        ("two", "argument --replica: invalid int value: 'two'"),
    ],
)
@pytest.mark.parametrize("mode", [["error"], ["clear"], ["status"]])
def test_a_bad_replica_is_one_command_error_line_and_changes_nothing(replica, message, mode):
    run("error")
    run("--replica", "2", "hang")
    with pytest.raises(CommandError) as raised:
        run("--replica", replica, *mode)
    assert str(raised.value) == message
    assert faults() == {None: "error", 2: "hang"}


@pytest.mark.parametrize(
    ("this_replica", "expected"),
    [(1, [503, 503]), (2, [502, 502]), (3, [200, 200])],
)
def test_users_obeys_its_own_fault_else_the_one_for_all(client, settings, this_replica, expected):
    settings.USERS_REPLICA = this_replica
    run("error", "--status", "503")
    run("--replica", "2", "fail-next", "2")  # replica 2: its own, then (used up) all's
    run("--replica", "3", "down")  # a transport fault: the proxy's; Users answers
    assert [client.get("/users/1").status_code for _ in expected] == expected
    if this_replica == 2:
        assert client.get("/users/1").status_code == 503  # its own ended: all's again


def test_a_replicas_fault_never_hits_another_replica(client, settings):
    run("--replica", "2", "error")
    for replica in (1, 3):
        settings.USERS_REPLICA = replica
        assert client.get("/users/1").status_code == 200
    assert Outage.objects.get().hits == 0
