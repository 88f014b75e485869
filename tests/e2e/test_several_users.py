"""Three Users replicas as real processes, each behind its own fault proxy, one made bad
through its own database: Orders, listing all three, answers every request, and the bad
replica gets a trickle until it heals, then its share again."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
import requests

from bench.stack import ManageConsole, Service, base_env, free_port, refuses, wait_until

pytestmark = pytest.mark.e2e

REQUESTS = 40


class Fleet:
    """Users 1 and 2 on one database, Users 3 on its own (so its faults are its own)."""

    def __init__(self, tmp: Path, template: Path) -> None:
        self.services: list[Service] = []
        self.consoles: list[ManageConsole] = []
        self.users: list[Service] = []
        proxies = []
        for replica, db in ((1, "shared"), (2, "shared"), (3, "own")):
            path = tmp / f"{db}.sqlite3"
            if not path.exists():
                shutil.copyfile(template, path)
            env = {**base_env(), "DATABASE_URL": f"sqlite:///{path}", "SERVICES": "users"}
            users = self._start(Service(f"users{replica}", env, tmp, free_port()))
            self.users.append(users)
            proxy_port = free_port()
            argv = [
                *(sys.executable, "manage.py", "fault_proxy"),
                *("--listen", f"127.0.0.1:{proxy_port}", "--upstream", f"127.0.0.1:{users.port}"),
            ]
            proxies.append(self._start(Service(f"proxy{replica}", env, tmp, proxy_port, argv=argv)))
        self.bad = ManageConsole({**base_env(), "DATABASE_URL": f"sqlite:///{tmp / 'own.sqlite3'}"})
        self.consoles.append(self.bad)
        self.bad_proxy_port = proxies[2].port
        orders_env = {
            **base_env(),
            "DATABASE_URL": f"sqlite:///{tmp / 'shared.sqlite3'}",
            "SERVICES": "orders",
            "USERS_SERVICE_URL": ",".join(p.url for p in proxies),
            "USERS_OUTLIER_BASE_EJECTION": "1",
        }
        self.orders = self._start(Service("orders", orders_env, tmp, free_port()))
        self.session = requests.Session()

    def _start(self, service: Service) -> Service:
        self.services.append(service)
        return service.start()

    def get(self) -> requests.Response:
        return self.session.get(f"{self.orders.url}/orders/", params={"user_id": 1}, timeout=30)

    def seen(self) -> list[int]:
        """Users requests each replica has logged so far."""
        return [len(users.user_requests()) for users in self.users]

    def stop(self) -> None:
        with contextlib.ExitStack() as stopping:
            for service in self.services:
                stopping.callback(service.stop)
            for console in self.consoles:
                stopping.callback(console.close)
            stopping.callback(self.session.close)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, sqlite_template) -> Iterator[Fleet]:
    started = Fleet(tmp_path_factory.mktemp("fleet"), sqlite_template)
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.parametrize(
    "fault",
    [
        ("error", "--status", "503"),
        ("slow", "--delay", "1.5"),
        ("down",),
        ("reset",),
    ],
    ids=lambda f: f[0],
)
def test_one_bad_replica_costs_orders_nothing_and_comes_back(fleet, fault):
    fleet.bad.run("simulate_outage", *fault)
    if fault[0] == "down":  # the proxy refuses once it has read the fault
        wait_until(lambda: refuses(fleet.bad_proxy_port), "replica 3's proxy to refuse")
    try:
        before = fleet.seen()
        answers = [fleet.get() for _ in range(REQUESTS)]
        assert [a.status_code for a in answers] == [HTTPStatus.OK] * REQUESTS
        assert all(a.json()["user"]["name"] == "Aaron Apple" for a in answers)
        served = [now - then for now, then in zip(fleet.seen(), before, strict=True)]
        assert served[2] <= 6  # the bad one: a trickle (fair share: 13), then out
        assert served[0] + served[1] >= REQUESTS - served[2]  # the healthy two: the rest
    finally:
        fleet.bad.run("simulate_outage", "clear")
    if fault[0] == "down":
        wait_until(lambda: not refuses(fleet.bad_proxy_port), "replica 3's proxy to listen")
    healed = fleet.seen()[2]

    def back_in_rotation() -> bool:
        assert fleet.get().status_code == HTTPStatus.OK
        return fleet.seen()[2] > healed

    wait_until(back_in_rotation, "the healed replica to get requests again", timeout=60)
