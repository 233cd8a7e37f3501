"""The Procfile's web process as a platform runs it: its own command line, PORT and WEB_CONCURRENCY from the
environment, gunicorn found on the PATH."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from webapp import ROOT

from .helpers import wait_until


def _procfile_command(process: str) -> str:
    for line in (Path(ROOT) / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"no {process} process in the Procfile")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_procfiles_web_process_serves_with_the_configured_processes(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "3", "WEB_THREADS": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 (gunicorn writes to it until the end)
    web = subprocess.Popen(["bash", "-c", "exec " + _procfile_command("web")], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            assert web.poll() is None, (tmp_path / "web.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200
            except requests.RequestException:  # not listening yet, or a worker still loading the app
                return False

        wait_until(up, timeout=60, message="the Procfile's web process to answer")
        wait_until(lambda: len(_children(web.pid)) == 3, timeout=30, message="three gunicorn workers")
        page = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert "Log in" in page.text
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)
        log.close()
