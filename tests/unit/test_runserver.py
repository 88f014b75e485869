"""Our runserver turns Nagle off, so kept-alive connections to the dev server do not stall."""

from __future__ import annotations

import socket
import threading

from django.core.management import load_command_class

from project.management.commands.runserver import NoDelayWSGIServer


def test_runserver_is_ours_not_staticfiles():
    assert load_command_class("project", "runserver").server_cls is NoDelayWSGIServer


def test_accepted_connections_have_tcp_nodelay():
    server = NoDelayWSGIServer(("127.0.0.1", 0), None, ipv6=False)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.get_request()[0]))
    thread.start()
    with socket.create_connection(server.server_address[:2]):
        thread.join(timeout=5)
    try:
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        accepted[0].close()
        server.server_close()
