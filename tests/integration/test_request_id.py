"""Request IDs: generated or kept, returned, logged, and passed from Orders to Users."""

from __future__ import annotations

import json
import logging
import re

import pytest

from project.logs import logging_config
from resilient_http.request_id import REQUEST_ID_HEADER, RequestIdFilter, request_id_from

pytestmark = pytest.mark.django_db


def test_a_request_without_an_id_gets_a_new_one(client):
    response = client.get("/users/1")
    assert re.fullmatch(r"[0-9a-f]{32}", response[REQUEST_ID_HEADER])
    assert client.get("/users/1")[REQUEST_ID_HEADER] != response[REQUEST_ID_HEADER]


def test_a_callers_id_is_kept(client):
    response = client.get("/users/1", headers={REQUEST_ID_HEADER: "gateway-trace:42"})
    assert response[REQUEST_ID_HEADER] == "gateway-trace:42"


@pytest.mark.parametrize("value", ["", "has space", "x" * 129, "inject\nfake log line", "é"])
def test_an_unacceptable_id_is_replaced(value):
    assert request_id_from(value) != value
    assert re.fullmatch(r"[0-9a-f]{32}", request_id_from(value))


def test_orders_passes_its_id_to_every_users_attempt(canned_users, orders_client, settings):
    seen: list[str] = []
    canned_users(body=b'{"id": 1, "name": "A", "phone": "1"}', on_request=seen.append)
    response = orders_client.get("/orders/", {"user_id": 1}, headers={REQUEST_ID_HEADER: "r-1"})
    assert response.status_code == 200
    assert response[REQUEST_ID_HEADER] == "r-1"
    assert seen == ["r-1"]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())  # as the console handler has it
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_log_lines_during_a_request_carry_its_id(client):
    collect = _Collect()
    logger = logging.getLogger("django.request")
    logger.addHandler(collect)
    try:
        client.get("/users/999", headers={REQUEST_ID_HEADER: "req-404"})
    finally:
        logger.removeHandler(collect)
    assert [r.getMessage() for r in collect.records] == ["Not Found: /users/999"]
    assert collect.records[0].request_id == "req-404"
    assert collect.records[0].request_id_suffix == " [req-404]"


def test_json_lines_hold_the_message_the_id_and_the_event_fields():
    config = logging_config("json")
    formatter_spec = dict(config["formatters"]["json"])
    factory = formatter_spec.pop("()")
    module, _, name = factory.rpartition(".")
    formatter = getattr(__import__(module, fromlist=[name]), name)(**formatter_spec)
    record = logging.LogRecord("resilient_http", logging.WARNING, __file__, 1, "retrying", (), None)
    record.event, record.attempt, record.wait = "retry_scheduled", 1, 0.25
    RequestIdFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["message"] == "retrying"
    assert line["level"] == "WARNING"
    assert (line["event"], line["attempt"], line["wait"]) == ("retry_scheduled", 1, 0.25)
    assert "request_id" in line
    assert "request_id_suffix" not in line


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config("xml")
