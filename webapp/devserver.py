"""The whole product on one machine: ``python -m webapp.devserver`` (what ``scripts/run`` starts).

It brings the database schema up to date, then runs the web (gunicorn) and one worker (with RQ's
scheduler and the sweep) as child processes, as the Procfile does in production. With REDIS_URL unset
it starts an embedded Redis; with DATABASE_URL unset the database is SQLite in ``instance/``. It
creates no tenant and no data. Ctrl-C (or SIGTERM) stops everything; if one child dies, the rest stop.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from . import ROOT
from .embedded_redis import ensure_redis_url

# A delivery in flight may take DELIVERY_TIMEOUT (15 s) to finish before the worker exits.
STOP_TIMEOUT = 30


def say(message: str) -> None:
    print(f"devserver: {message}", file=sys.stderr, flush=True)


def hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def configure_environment() -> None:
    """Fill in development defaults for what the environment leaves unset, and say what was chosen."""
    if not os.environ.get("SECRET_KEY"):
        os.environ["AGENTHOOKS_ENV"] = "development"
        say("SECRET_KEY is unset: running in development mode (AGENTHOOKS_ENV=development) with an "
            "insecure, fixed development key.")
    if "ALLOW_PRIVATE_DESTINATIONS" not in os.environ:
        os.environ["ALLOW_PRIVATE_DESTINATIONS"] = "1"
        say("ALLOW_PRIVATE_DESTINATIONS=1: endpoints may point at localhost and private addresses "
            "(development only; set ALLOW_PRIVATE_DESTINATIONS=0 to refuse them as production does).")


def migrate() -> None:
    """Bring the database schema up to date, as the Procfile's release step does."""
    import flask_migrate

    from . import create_app
    from .extensions import db

    app = create_app()
    say(f"database: {hide_password(app.config['SQLALCHEMY_DATABASE_URI'])}")
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is no obstacle
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def web_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer (a redirect to the login page, a 404) means the web is up
    except OSError:
        return False
    return True


def start(name: str, command: list[str]) -> subprocess.Popen:
    # Each child gets its own session, so a Ctrl-C in the terminal reaches only us, and we stop each
    # child exactly once (a second signal would make the worker abandon a delivery in flight).
    say(f"starting {name}: {' '.join(command[2:] if command[0] == sys.executable else command)}")
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True)


def stop(children: dict[str, subprocess.Popen]) -> None:
    """Ask every child to stop, wait for them, and kill what is still running after STOP_TIMEOUT."""
    for process in children.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, process in children.items():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {STOP_TIMEOUT} s; killing it")
            signal_group(process, signal.SIGKILL)
            process.wait()
        # A child that died abruptly may have left its own children (gunicorn's workers, RQ's scheduler).
        signal_group(process, signal.SIGKILL)


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Signal what is left of the process group the child leads (it was started in a session of its own)."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/run", description="Run AgentHooks locally: web, worker and, if REDIS_URL is unset, an "
        "embedded Redis.", epilog="Configured by the environment only: PORT, DATABASE_URL, REDIS_URL, "
        "SECRET_KEY, … (see the README).")
    parser.parse_args(argv)
    port = int(os.environ.get("PORT", "5000"))
    url = f"http://127.0.0.1:{port}"
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop_requested.set())

    if not port_is_free(port):
        say(f"port {port} is already in use: stop what runs there, or set PORT to another port.")
        return 1
    configure_environment()
    redis = ensure_redis_url()
    children: dict[str, subprocess.Popen] = {}
    try:
        if redis:
            say(f"REDIS_URL is unset: started an embedded Redis at {redis.url} (it keeps nothing on disk).")
        else:
            say(f"redis: {hide_password(os.environ['REDIS_URL'])}")
        migrate()
        if stop_requested.is_set():
            return 0
        children["web"] = start("web", [sys.executable, "-m", "gunicorn", "-c", "webapp/gunicorn_conf.py",
                                        "--bind", f"127.0.0.1:{port}", "webapp:create_app()"])
        children["worker"] = start("worker", [sys.executable, "-m", "flask", "--app", "webapp", "worker"])
        watched = {**children, **({"embedded Redis": redis.process} if redis else {})}
        announced = False
        while not stop_requested.wait(0.5):
            for name, process in watched.items():
                if process.poll() is not None:
                    say(f"{name} exited with code {process.returncode}; stopping everything else.")
                    return 1
            if not announced and web_answers(url):
                announced = True
                print(f"\nAgentHooks is running at {url} — sign up there. Ctrl-C stops it.\n", flush=True)
        say("stopping …")
        return 0
    finally:
        stop(children)
        if redis:
            redis.stop()  # last: the worker talks to Redis until it has stopped


if __name__ == "__main__":
    sys.exit(main())
