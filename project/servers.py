"""How each service process is started, in one place: the launcher and the benchmarks."""

from __future__ import annotations

import sys

SERVERS = ("runserver", "gunicorn")
#: gunicorn's access log in the tutorial's shape, plus the request ID Django returned.
ACCESS_LOG_FORMAT = '%(t)s "%(r)s" %(s)s %(b)s [%({x-request-id}o)s]'


#: gunicorn's keep-alive behind the front server: longer than nginx keeps an idle upstream
#: connection (30 s), so gunicorn never closes one that nginx is about to reuse.
BEHIND_FRONT_KEEP_ALIVE = 60


def server_command(
    server: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    workers: int = 1,
    threads: int = 32,
    behind_front: bool = False,
) -> list[str]:
    """The argv that serves this project on ``host:port``.

    gunicorn runs threaded workers (``gthread``): the Users calls are I/O-bound, and each
    worker process has its own breaker and budget, so few workers with many threads keep
    that state shared by most requests. ``behind_front``: nginx is its only caller
    (``project.front``). What only this tree has (its access log's logger) is in
    ``gunicorn.conf.py``, which gunicorn reads from the directory it runs in.
    """
    if server == "gunicorn":
        keep_alive = ("--keep-alive", str(BEHIND_FRONT_KEEP_ALIVE)) if behind_front else ()
        return [
            *(sys.executable, "-m", "gunicorn", "project.wsgi:application"),
            *("--bind", f"{host}:{port}", "--worker-class", "gthread"),
            *("--workers", str(workers), "--threads", str(threads), *keep_alive),
            *("--graceful-timeout", "10", "--access-logfile", "-"),
            *("--access-logformat", ACCESS_LOG_FORMAT),
            # A request line as long as nginx takes (8 KiB buffers): Django, not gunicorn's
            # HTML page, answers what is too much in it (too many query fields: 400 problem).
            *("--limit-request-line", "8190"),
        ]
    if server == "runserver":
        return [sys.executable, "manage.py", "runserver", f"{host}:{port}"]
    raise ValueError(f"server must be one of {', '.join(SERVERS)}; got {server!r}")
