"""The front server: Debian's nginx in front of each service's gunicorn (``make serve``).

gunicorn's ``gthread`` worker gives a connection a thread on its first byte and then reads
headers and body with no timeout: 32 callers that send one byte hold all 32 threads.
gunicorn's documentation asks for a buffering proxy in front; nginx reads each request whole,
under time and size limits, and hands gunicorn only complete ones. Its own errors answer in
the services' problem+json shape (``PROBLEMS``). The configuration is
``nginx.conf.template`` with this module's values filled in, written to a runtime directory
that holds everything nginx writes (pid, temporary files): it runs as the invoking user.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from project.env import env_int, env_str

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
#: The request body cap, in bytes: nginx's ``client_max_body_size`` and Django's, one value.
MAX_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1_048_576)
#: Requests in progress per client address. Orders' calls to Users all come from one
#: address (32 threads per Orders process): room for a few Orders processes.
CONN_PER_CLIENT = 128
#: The same default as ``settings.PROBLEM_TYPE_BASE`` (nginx cannot ask Django).
PROBLEM_TYPE_BASE = env_str("PROBLEM_TYPE_BASE", "tag:resilient-django,2026:problem:")


@dataclass(frozen=True)
class FrontProblem:
    """An error nginx answers itself: ``status`` as nginx names it internally, ``answer``
    the status sent (nginx calls a too-large header 494; HTTP calls it 431)."""

    status: int
    code: str
    detail: str
    answer: int | None = None
    retry_after: int | None = None

    @property
    def sent(self) -> int:
        return self.answer or self.status


PROBLEMS = (
    FrontProblem(400, "bad_request", "The request is not valid HTTP."),
    FrontProblem(404, "not_found", "There is nothing here."),  # only nginx's own /_front/
    FrontProblem(408, "request_timeout", "The request was not sent in time."),
    FrontProblem(413, "body_too_large", "The request body is over the size limit."),
    FrontProblem(414, "uri_too_long", "The request line is over the size limit."),
    FrontProblem(494, "header_too_large", "A request header is over the size limit.", 431),
    FrontProblem(
        429, "too_many_connections", "Too many requests at once from one address.", None, 1
    ),
    FrontProblem(502, "bad_gateway", "The service is not answering; try again later.", None, 1),
    FrontProblem(
        503, "service_unavailable", "The service is unavailable; try again later.", None, 1
    ),
    FrontProblem(504, "gateway_timeout", "The service did not answer in time.", None, 1),
)


def problem_body(problem: FrontProblem, type_base: str = PROBLEM_TYPE_BASE) -> str:
    """The problem+json body nginx sends (``resilient_http.problems.problem_response``'s shape)."""
    return json.dumps(
        {
            "type": f"{type_base}{problem.code}",
            "title": HTTPStatus(problem.sent).phrase,
            "status": problem.sent,
            "detail": problem.detail,
            "code": problem.code,
        },
        separators=(",", ":"),
    )


def _problem_locations(type_base: str) -> str:
    lines = []
    for problem in PROBLEMS:
        body = problem_body(problem, type_base)
        # nginx would expand "$..." in the text, and the quote would end it.
        if any(char in body for char in "$'\\"):
            raise ValueError(f"cannot quote {body!r} for nginx")
        after = problem.retry_after
        retry = f" add_header Retry-After {after} always;" if after else ""
        # A URI, not a named location: a request line nginx could not parse has no URI
        # to carry into a named one (nginx then answers its own 500 page).
        lines += [
            f"        error_page {problem.status} ={problem.sent} /_front/{problem.code};",
            f"        location = /_front/{problem.code} {{ internal;"
            f" default_type application/problem+json;{retry} return {problem.sent} '{body}'; }}",
        ]
    return "\n".join(lines)


def nginx_config(
    *,
    listen: str,
    backends: Sequence[str],
    runtime: Path,
    max_body_bytes: int = MAX_BODY_BYTES,
    type_base: str = PROBLEM_TYPE_BASE,
) -> str:
    """The template with every field filled: nginx on ``listen`` (``host:port``), proxying
    to the gunicorn(s) at ``backends`` (``host:port`` each)."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    fields = {
        # As root, nginx's workers would switch to "nobody", who cannot enter the runtime
        # directory; as anyone else the directive is ignored (with a warning): say it only then.
        "USER": f"user {user};" if os.geteuid() == 0 else "",
        "RUNTIME": str(runtime),
        "MAX_BODY": str(max_body_bytes),
        "CONN_PER_CLIENT": str(CONN_PER_CLIENT),
        "LISTEN": listen,
        "BACKENDS": "\n".join(f"        server {b} max_fails=0;" for b in backends),
        "PROBLEMS": _problem_locations(type_base),
    }
    text = TEMPLATE.read_text()
    for name, value in fields.items():
        text = text.replace(f"@{name}@", value)
    if left := re.findall(r"@[A-Z_]+@", text):
        raise ValueError(f"fields of the nginx template left unfilled: {left}")
    return text


def nginx_binary() -> str:
    """Where nginx is (``/usr/sbin`` is not on every user's ``PATH``)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError(
            "nginx is not installed: run `bash scripts/debian_server.sh nginx` as root"
        )
    return found


def front_command(
    name: str,
    *,
    listen: str,
    backends: Sequence[str],
    runtime_root: Path,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> list[str]:
    """Write ``name``'s configuration into its own directory under ``runtime_root``; the
    argv that runs nginx on it, in the foreground, logging to stdout and stderr."""
    runtime = runtime_root / f"front-{name}-{listen.rsplit(':', 1)[-1]}"
    runtime.mkdir(parents=True, exist_ok=True)
    conf = runtime / "nginx.conf"
    conf.write_text(
        nginx_config(
            listen=listen, backends=backends, runtime=runtime, max_body_bytes=max_body_bytes
        )
    )
    # -e: the log for before the configuration is read (the built-in path is /var/log).
    return [nginx_binary(), "-p", str(runtime), "-c", str(conf), "-e", "stderr"]
