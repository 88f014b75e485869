"""Hostile requests Django must hold against on its own, front server or not: a huge body,
deep JSON, Unicode digits, too many fields, control characters for the log."""

from __future__ import annotations

import logging
import socket
from http import HTTPStatus

import pytest
from django.test import Client

from project.logs import EscapingFormatter, escape
from resilient_http import Deadline

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.mark.django_db(transaction=True)  # live_server: sorted with the transactional tests
def test_a_huge_body_is_refused_before_it_is_read(live_server):
    """300 MB announced, 64 KiB sent: the 413 comes back while the rest was never sent, so
    it was decided on the length, not after reading (DRF's parser would read all of it)."""
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            "POST /orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {300 * 1024 * 1024}\r\nIdempotency-Key: k-big\r\n\r\n"
        )
        sock.sendall(head.encode() + b"[" + b" " * 65535)
        answer = b""
        while b"\r\n\r\n" not in answer or b"}" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    assert PROBLEM.encode() in rest
    assert b'"code": "body_too_large"' in rest.replace(b'":"', b'": "')


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("[" * 1000 + "]" * 1000, "parse_error"),  # RecursionError in the JSON scanner
        ('{"user_id": 1, "product": "x"' + "}" * 0, "parse_error"),
        ('{"user_id": ' + "9" * 5000 + ', "product": "x"}', "parse_error"),  # int's digit cap
        ('{"user_id": NaN, "product": "x"}', "parse_error"),
    ],
    ids=["deep", "truncated", "huge-int", "nan"],
)
def test_every_malformed_json_body_is_a_400(client, caplog, body, code):
    with caplog.at_level(logging.WARNING):
        response = client.post(
            "/orders/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
        )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == code
    assert "Traceback" not in caplog.text


def test_too_many_query_fields_is_a_problem_not_an_html_page(client, caplog):
    query = "&".join(f"f{n}=1" for n in range(1900))
    with caplog.at_level(logging.WARNING):
        response = client.get(f"/orders/?user_id=1&{query}")
        users = client.get(f"/users/1?{query}")
    for answer in (response, users):
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert answer["Content-Type"] == PROBLEM
        assert answer.json()["code"] == "too_many_fields"
    assert "Traceback" not in caplog.text


def test_a_content_length_that_is_not_a_number_is_a_400(client):
    response = client.generic(
        "POST", "/orders/", b"{}", content_type="application/json", CONTENT_LENGTH="²"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid_content_length"


@pytest.mark.parametrize("value", ["²", "١٢٠٠", "12²", "-5", "1e3", " ", "9" * 13])
def test_an_unreadable_deadline_header_is_ignored(value):
    """As documented: a hint, and a bad one must not break a call (it was a 500 for '²')."""
    assert Deadline.from_header(value) is None


def test_users_and_orders_answer_with_a_unicode_digit_deadline(client):
    users = client.get("/users/1", HTTP_X_REQUEST_TIMEOUT_MS="²")
    assert users.status_code in (HTTPStatus.OK, HTTPStatus.NOT_FOUND)
    orders = Client().get("/orders/", {"user_id": "²"})
    assert orders.status_code == HTTPStatus.BAD_REQUEST  # not an integer: invalid_request
    assert orders.json()["code"] == "invalid_request"


@pytest.mark.parametrize("value", ["\u0661\u0662", "\u00b2", "\U0001d7d9"])
def test_a_query_number_in_other_digits_is_not_a_number(client, value):
    """``int("١٢")`` is 12; a user id off the wire is ASCII digits or it is invalid."""
    response = client.get("/orders/", {"user_id": value})
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_control_characters_are_escaped_in_the_text_log():
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"GET /\x1b[2J HTTP/1.1" %s', ("400",), None
    )
    line = EscapingFormatter("%(message)s").format(record)
    assert line == '"GET /\\x1b[2J HTTP/1.1" 400'
    assert escape("plain é") == "plain é"
    assert escape("a\nb\rc\x00") == "a\\nb\\rc\\x00"


def test_gunicorns_access_log_escapes_the_request_line():
    """gunicorn writes the request line as sent; ``gunicorn.conf.py`` makes it escape it."""
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    from project.gunicorn_log import EscapingLogger

    config = Config()
    config.set("logger_class", "project.gunicorn_log.EscapingLogger")
    logger = EscapingLogger(config)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/\x1b[2J", "SERVER_PROTOCOL": "HTTP/1.1"}
    request = SimpleNamespace(headers=[], method="GET", uri="/\x1b[2J", path="/\x1b[2J",
                              query="", version=(1, 1))  # fmt: skip
    response = SimpleNamespace(status="404 Not Found", headers=[], sent=0, response_length=0)
    atoms = logger.atoms(response, request, environ, timedelta(seconds=0.01))
    assert atoms["r"] == "GET /\\x1b[2J HTTP/1.1"
    assert atoms["s"] == "404"
