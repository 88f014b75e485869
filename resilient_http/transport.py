"""The transport: one attempt on a pooled ``requests`` session, as an ``Outcome``.

One session per upstream, its connections kept alive and shared by every thread (urllib3's
pool). Each attempt sends once (``max_retries=0``: the loop decides about retries, so there
is no second retry layer to multiply attempts), reads the whole body under a size cap, and
runs under a ``Guard``: the watchdog shuts the socket when the attempt's time is up,
whatever phase the exchange is in. Failures come back as the ``Outcome``'s ``error``; only
bugs (a bad URL, bad arguments) raise.

An attempt goes to the session's adapter as a request prepared here (``prepare``), not
through ``Session.request``: that merges cookies, proxies, auth and hooks on every call,
which a service call does not use, and cost more than the rest of the layer together
(docs/benchmarks.md, "What a healthy call costs"). The bytes sent are the same.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import Timeout

from .config import UpstreamConfig
from .deadline import Deadline
from .digits import ascii_int
from .outcome import Outcome
from .watchdog import Guard, GuardedAdapter, Watchdog, watching

#: Request header carrying the caller's time left, in whole milliseconds, so the upstream
#: can stop working for a caller that has given up (like gRPC's ``grpc-timeout``).
DEADLINE_HEADER = "X-Request-Timeout-Ms"

#: A path ``requests`` sends as it is: nothing to quote, and no dot segment (``/./``,
#: ``/../``) for urllib3 to remove (a path with ``/.`` anywhere takes the long way).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~-]*")


@dataclass(frozen=True, slots=True)
class Request:
    """What to send; the same for every attempt of a call (the host may change)."""

    method: str
    path: str
    params: Mapping[str, str] | None
    headers: CaseInsensitiveDict[str]
    json_body: Any = None


class _BodyError(Exception):
    """Reading the body failed: ``kind`` is the attempt's outcome."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _no_cookies() -> http.cookiejar.CookieJar:
    """Service calls are stateless; a shared jar would also be shared mutable state."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def new_session(pool_maxsize: int, hosts: int = 1) -> requests.Session:
    """A session for one upstream: pooled (one pool per host, each kept), guarded, no
    cookies, no proxy lookups."""
    session = requests.Session()
    session.trust_env = False  # no proxy/netrc lookups per call: this is a private hop
    session.cookies = _no_cookies()
    adapter = GuardedAdapter(pool_connections=hosts, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Transport:
    """Sends attempts to one upstream. Thread-safe (the session's pool is)."""

    def __init__(
        self,
        config: UpstreamConfig,
        watchdog: Watchdog,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.session = session or new_session(config.pool_maxsize, len(config.hosts))
        self._watchdog = watchdog
        self._prefixes = {url: _prefix(url) for url in config.hosts}

    def arm(self, seconds: float) -> Guard:
        """A guard for one attempt: the watchdog fires it in ``seconds``; a hedged call
        fires its losing attempt's itself."""
        return self._watchdog.arm(seconds)

    def send(self, request: Request, guard: Guard, deadline: Deadline, base_url: str) -> Outcome:
        """One attempt at ``base_url`` with the time ``deadline`` leaves, cut by ``guard``
        if it fires."""
        left = deadline.remaining()
        if left <= 0 or guard.fired:  # the time went while this waited for a CPU or a
            guard.disarm()  # worker, or the attempt was cancelled meanwhile: send nothing
            return Outcome(error="deadline_exceeded")
        request.headers[DEADLINE_HEADER] = str(int(left * 1000))
        with watching(guard):
            outcome, response = self._exchange(request, base_url, left)
        if response is not None:
            if guard.fired or outcome.error is not None or _failed(outcome.status):
                # Cut or half-read: this connection never goes back to the pool. Nor does
                # one that carried a failure: the retry must not ride it back to the same
                # server behind a TCP load balancer.
                response.close()
            else:
                response.raw.release_conn()  # fully read: keep-alive, back to the pool
        if guard.fired:  # whatever the exchange saw last (EOF, reset), the guard ended it
            return Outcome(status=outcome.status, error="deadline_exceeded")
        return outcome

    def close(self) -> None:
        self.session.close()

    def prepare(self, request: Request, base_url: str) -> requests.PreparedRequest:
        """What ``Session.request`` would send for ``request`` at ``base_url``: the
        session's headers under the call's (``None`` removes one), each checked as
        requests checks it (no CR or LF: no header injection), the URL quoted and the
        JSON body encoded by requests' own code. No cookies (a service call is
        stateless), no auth, no redirects (the loop returns a 3xx as it is)."""
        prepared = requests.PreparedRequest()
        prepared.method = request.method
        prepared.url = self._url(base_url, request.path, request.params)
        headers = CaseInsensitiveDict(self.session.headers)
        for name, value in request.headers.items():
            if value is None:
                headers.pop(name, None)
            else:
                check_header_validity((name, value))
                headers[name] = value
        prepared.headers = headers
        prepared.prepare_body(None, None, request.json_body)
        return prepared

    def _url(self, base_url: str, path: str, params: Mapping[str, str] | None) -> str:
        """requests' URL for ``base_url + path`` with ``params``; a plain path is glued
        to the base URL requests prepared once (its parsing cost most of an attempt)."""
        prefix = self._prefixes.get(base_url)
        if prefix is not None and not params and _PLAIN_PATH.fullmatch(path) and "/." not in path:
            return prefix + path
        prepared = requests.PreparedRequest()
        prepared.prepare_url(base_url + path, params)
        return prepared.url  # type: ignore[return-value]  # set by prepare_url

    def _exchange(
        self, request: Request, base_url: str, left: float
    ) -> tuple[Outcome, requests.Response | None]:
        cfg = self.config
        session = self.session
        try:
            prepared = self.prepare(request, base_url)
            response = session.get_adapter(prepared.url).send(  # type: ignore[arg-type]
                prepared,
                stream=True,
                # total: the read phase gets only what the connect phase left of ``left``.
                timeout=Timeout(
                    connect=min(cfg.connect_timeout, left),
                    read=min(cfg.read_timeout, left),
                    total=left,
                ),
                verify=session.verify,
                cert=session.cert,
                proxies=session.proxies,
            )
        except requests.RequestException as exc:
            return Outcome(error=classify(exc)), None
        if _failed(response.status_code):  # its body is never used: not read, and the
            return Outcome(response.status_code, response.headers), response  # conn closed
        try:
            content = self._read_body(response)
        except _BodyError as err:
            return Outcome(status=response.status_code, error=err.kind), response
        return Outcome(response.status_code, response.headers, content), response

    def _read_body(self, response: requests.Response) -> bytes:
        """Read the body in whatever pieces arrive, never past the size cap.

        ``read1`` returns after one socket read instead of waiting for a full chunk; the
        watchdog ends the read when the deadline comes, however slowly the bytes arrive.
        """
        cap = self.config.max_body_bytes
        sent = response.headers.get("Content-Length")
        declared = ascii_int(sent)
        if sent is not None and declared is None:  # "²", "-1", "5, 5": not a length (RFC
            raise _BodyError("malformed_response")  # 9112 section 6.3: unrecoverable)
        if declared is not None and declared > cap:
            raise _BodyError("body_too_large")
        raw = response.raw
        body = bytearray()
        while True:
            try:
                chunk = raw.read1(64 * 1024, decode_content=True)
            except ReadTimeoutError as exc:
                raise _BodyError("read_timeout") from exc
            except ProtocolError as exc:
                raise _BodyError("connection_reset") from exc
            except DecodeError as exc:
                raise _BodyError("undecodable_body") from exc
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > cap:
                raise _BodyError("body_too_large")


def _prefix(base_url: str) -> str:
    """``base_url`` as requests prepares it, to put a plain path after."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(base_url + "/", None)
    return prepared.url[:-1]  # type: ignore[index]  # set by prepare_url


def _failed(status: int | None) -> bool:
    """A 5xx or a 429: the loop retries it or gives up, and never uses its body."""
    return status is not None and (status >= 500 or status == 429)


def classify(exc: requests.RequestException) -> str:
    """Name what went wrong. Only transport failures are outages; anything else is a bug
    (a bad URL, bad arguments) and is re-raised, never turned into a 503.
    """
    cause: object = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(cause, NewConnectionError):  # refused, unreachable, DNS: never sent
        return "connect_error"
    if isinstance(cause, ConnectTimeoutError) or isinstance(exc, requests.ConnectTimeout):
        return "connect_timeout"
    if isinstance(cause, ReadTimeoutError) or isinstance(exc, requests.ReadTimeout):
        return "read_timeout"
    if _malformed(cause):  # it answered, in something that is not HTTP/1.1: a 502
        return "malformed_response"
    if isinstance(exc, requests.ConnectionError):  # reset or closed after sending
        return "connection_reset"
    raise exc


def _malformed(cause: object) -> bool:
    """A status line or headers that http.client refused (not HTTP, a line over 64 KiB,
    over 100 headers): the server is talking, wrongly, and asking again will not fix that.
    A connection closed before the status line (``RemoteDisconnected``) is not this: that
    is a reset, and retried like one.
    """
    inner = cause.args[1] if isinstance(cause, ProtocolError) and len(cause.args) > 1 else None
    return isinstance(inner, http.client.HTTPException) and not isinstance(
        inner, http.client.RemoteDisconnected | ConnectionError
    )
