"""The library as a stranger installs it: the wheel built from this tree, pip-installed
into a fresh virtualenv (no path tricks: the tree is not on its ``sys.path``), a project
from ``django-admin startproject``, the install steps exactly as README.md writes them,
then ``manage.py check`` and a resilient call, retry included, against a real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from resilient_http.pytest_plugin import UpstreamServer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
PLACEHOLDER = "http://127.0.0.1:8300"  # the README's upstream URL, replaced by the server's


def run(*argv: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return done


def ok(*argv: str | Path, cwd: Path, timeout: float = 300) -> str:
    done = run(*argv, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def install_steps() -> tuple[str, str]:
    """README.md's install section: its first python block goes at the end of settings.py,
    its second (``urlpatterns``) at the end of urls.py."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Install the library in your project", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2, "README's install section lost its settings and urls blocks"
    return blocks[0], blocks[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fresh virtualenv's bin/, the wheel)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # what the build reads, and nothing left over from another
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "resilient_http", source / "resilient_http", ignore=IGNORED)
    ok(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", source, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("django_resilient_http-*.whl")
    ok(sys.executable, "-m", "venv", tmp / "venv", cwd=tmp)
    pins = [  # the versions this tree is tested with (pip's constraints take no extras)
        re.sub(r"\[.*\]", "", line)
        for name in ("requirements.txt", "requirements-dev.txt")
        for line in (ROOT / name).read_text().splitlines()
        if "==" in line and not line.startswith("#")
    ]
    (tmp / "constraints.txt").write_text("\n".join(pins) + "\n")
    bin_ = tmp / "venv" / "bin"
    ok(bin_ / "pip", "install", "-q", "-c", "constraints.txt", f"{wheel}[drf]", "pytest", cwd=tmp)
    return bin_, wheel


def test_the_wheel_holds_the_library_and_nothing_of_the_demo(venv):
    _, wheel = venv
    names = zipfile.ZipFile(wheel).namelist()
    assert "resilient_http/py.typed" in names
    assert "resilient_http/templates/resilient_http/upstreams.html" in names  # the live page
    assert "resilient_http/static/resilient_http/upstreams.js" in names
    assert "resilient_http/pytest_plugin.py" in names
    assert {n.split("/")[0] for n in names} == {
        "resilient_http",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert "Provides-Extra: drf" in text


def test_a_new_project_follows_the_readme_and_makes_a_resilient_call(venv, tmp_path):
    bin_, _ = venv
    ok(bin_ / "django-admin", "startproject", "mysite", tmp_path, cwd=tmp_path)
    settings_block, urls_block = install_steps()
    with UpstreamServer() as server:
        server.script(503, (200, {"id": 7, "paid": True}))
        settings = tmp_path / "mysite" / "settings.py"
        settings.write_text(
            settings.read_text() + "\n" + settings_block.replace(PLACEHOLDER, server.url)
        )
        urls = tmp_path / "mysite" / "urls.py"
        urls.write_text(urls.read_text() + "\n" + urls_block)
        python = bin_ / "python"
        assert "no issues" in ok(python, "manage.py", "check", cwd=tmp_path)
        call = (
            "from resilient_http import upstream; r = upstream('payments').get('/charges/7');"
            "print(r.status, r.json(), [a.outcome for a in r.history]);"
            "from django.test import Client; c = Client(HTTP_HOST='localhost');"
            "state = c.get('/resilience/upstreams.json').json()['upstreams'][0];"
            "print(c.get('/resilience/').status_code, state['name'], len(state['calls']))"
        )
        out = ok(python, "manage.py", "shell", "-c", call, cwd=tmp_path)
    call_line, page_line = out.strip().splitlines()[-2:]
    assert call_line == "200 {'id': 7, 'paid': True} ['503', '200']"
    assert page_line == "200 payments 1"  # the live page, and the call on it
    assert [r.path for r in server.requests] == ["/charges/7", "/charges/7"]
    assert str(ROOT) not in ok(
        python, "-c", "import resilient_http; print(resilient_http.__file__)", cwd=tmp_path
    )


def test_check_names_a_bad_upstream_in_the_new_project(venv, tmp_path):
    bin_, _ = venv
    ok(bin_ / "django-admin", "startproject", "mysite", tmp_path, cwd=tmp_path)
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + '\nINSTALLED_APPS += ["resilient_http"]\n'
        + 'UPSTREAMS = {"payments": {"base_url": "http://127.0.0.1:8300", "retires": 2}}\n'
    )
    done = run(bin_ / "python", "manage.py", "check", cwd=tmp_path)
    assert done.returncode != 0
    assert "resilient_http.E003" in done.stderr
    assert "did you mean 'retries'?" in done.stderr


def test_the_pytest_plugin_is_registered_by_the_install(venv, tmp_path):
    bin_, _ = venv
    (tmp_path / "test_payments.py").write_text(
        "from resilient_http import RetryManager, UpstreamConfig\n\n"
        "def test_a_retry(upstream_server, resilient_testing):\n"
        "    upstream_server.script(503, (200, {'ok': True}))\n"
        "    config = UpstreamConfig(name='payments', base_url=upstream_server.url)\n"
        "    payments = RetryManager(config)\n"
        "    assert payments.get('/x').json() == {'ok': True}\n"
        "    assert len(upstream_server.requests) == 2\n"
    )
    out = ok(bin_ / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert "1 passed" in out
