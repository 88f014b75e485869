"""``runserver`` with ``TCP_NODELAY`` on every connection.

Django's development server writes a response's headers and body in two small sends.
With Nagle's algorithm on, the second waits for the client to acknowledge the first,
and the client delays that ACK by up to 40 ms: on a kept-alive connection (what a pooled
client uses) every call to the dev server took ~45 ms instead of ~2 ms, and a
connection-per-call client looked faster than a pool. gunicorn sets ``TCP_NODELAY``
itself; this does the same for ``runserver``, and changes nothing else.
"""

from __future__ import annotations

import socket

from django.contrib.staticfiles.management.commands.runserver import Command as BaseCommand
from django.core.servers.basehttp import WSGIServer


class NoDelayWSGIServer(WSGIServer):
    def get_request(self) -> tuple[socket.socket, object]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


class Command(BaseCommand):
    server_cls = NoDelayWSGIServer
