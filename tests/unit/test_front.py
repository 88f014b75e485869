"""The front server's configuration (project/front.py): every field filled, every problem
page present, and nginx itself accepts it."""

from __future__ import annotations

import json
import subprocess

import pytest

from project.front import PROBLEMS, nginx_binary, nginx_config, problem_body


def test_every_field_is_filled_and_every_problem_has_its_page(tmp_path):
    text = nginx_config(listen="127.0.0.1:8201", backends=["127.0.0.1:9001"], runtime=tmp_path)
    assert "listen 127.0.0.1:8201 " in text
    assert "server 127.0.0.1:9001 max_fails=0;" in text
    assert f"client_body_temp_path {tmp_path}/body;" in text
    for problem in PROBLEMS:
        assert f"error_page {problem.status} ={problem.sent} /_front/{problem.code};" in text
        assert f"return {problem.sent} '{problem_body(problem)}';" in text


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.code)
def test_each_problem_is_the_services_shape(problem):
    body = json.loads(problem_body(problem, "tag:x:"))
    assert body == {
        "type": f"tag:x:{problem.code}",
        "title": body["title"],
        "status": problem.sent,
        "detail": problem.detail,
        "code": problem.code,
    }
    assert body["title"]


def test_nginx_accepts_the_configuration(tmp_path, closed_port):
    try:
        nginx = nginx_binary()
    except FileNotFoundError:
        pytest.skip("nginx is not installed (make nginx, as root)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        nginx_config(listen=f"127.0.0.1:{closed_port}", backends=["127.0.0.1:9"], runtime=tmp_path)
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
