"""The transport prepares each attempt itself, skipping ``Session.request``'s per-call
merging (docs/benchmarks.md, "What a healthy call costs"): what it prepares must be what
``Session.request`` would have sent, byte for byte, for any path, query and headers.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from resilient_http import UpstreamConfig
from resilient_http.transport import Request, Transport, new_session
from resilient_http.watchdog import WATCHDOG

BASES = ("http://users.test:8200", "https://10.0.0.7", "http://[::1]:8200", "http://h.test/api/v1")
#: Paths of every kind: plain ones (the short way) and ones requests quotes or normalises.
PATHS = st.text(alphabet="abcXYZ019/-._~ %?#&=+é\t[]@:!$'()*,;", max_size=30).map(
    lambda tail: "/" + tail
)


def transport(base: str) -> Transport:
    return Transport(UpstreamConfig(name="users", base_url=base), WATCHDOG, session=new_session(4))


def what_requests_sends(
    session: requests.Session, method: str, url: str, **kwargs
) -> requests.PreparedRequest:
    return session.prepare_request(requests.Request(method, url, **kwargs))


TRICKY = ("/a b", "/a%20b", "/a%zz", "/./a", "/a/../b", "/a/.", "/é", "/a?b=c d", "/a#f", "/a//b")


@given(base=st.sampled_from(BASES), path=PATHS)
def test_the_url_is_the_one_requests_prepares(base, path):
    try:
        expected = requests.Request("GET", base + path).prepare().url
    except requests.RequestException:
        return  # requests refuses it: so does the long way, with the same error
    assert transport(base)._url(base, path, None) == expected


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("path", TRICKY)
def test_tricky_paths_are_sent_as_requests_sends_them(base, path):
    expected = requests.Request("GET", base + path).prepare().url
    assert transport(base)._url(base, path, None) == expected


@given(
    path=PATHS,
    params=st.dictionaries(
        st.text("ab= &é", min_size=1, max_size=4), st.text("xy&= é", max_size=4), max_size=3
    ),
)
def test_the_query_is_the_one_requests_prepares(path, params):
    base = BASES[0]
    try:
        expected = requests.Request("GET", base + path, params=params).prepare().url
    except requests.RequestException:
        return
    assert transport(base)._url(base, path, params) == expected


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("GET", {"X-Request-ID": "abc"}, None),
        ("POST", {"Idempotency-Key": "k1", "Accept": "application/json"}, {"user_id": 1}),
        ("POST", {}, None),  # Content-Length: 0, as requests sends it
        ("DELETE", {"User-Agent": None}, None),  # None removes the session's header
    ],
)
def test_headers_and_body_are_the_ones_requests_prepares(method, headers, body):
    base = BASES[0]
    ours = transport(base)
    request = Request(method, "/orders/", None, CaseInsensitiveDict(headers), body)
    prepared = ours.prepare(request, base)
    expected = what_requests_sends(
        ours.session, method, base + "/orders/", headers=headers, json=body
    )
    assert prepared.url == expected.url
    assert prepared.method == expected.method
    assert dict(prepared.headers.lower_items()) == dict(expected.headers.lower_items())
    assert prepared.body == expected.body


def test_a_header_that_would_inject_another_is_refused():
    base = BASES[0]
    request = Request("GET", "/users/1", None, CaseInsensitiveDict({"X-A": "1\r\nX-Evil: 1"}))
    with pytest.raises(requests.exceptions.InvalidHeader):
        transport(base).prepare(request, base)
