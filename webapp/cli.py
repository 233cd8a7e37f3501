"""Operator commands: ``flask --app webapp tenant create …``, ``… worker`` and ``… secrets reencrypt``."""
from __future__ import annotations

import json
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select, update

from .crypto import reencrypt
from .extensions import db
from .models import Endpoint
from .services.api_keys import create_key
from .services.common import ValidationError
from .services.tenants import create_tenant
from .tenancy import all_tenants, tenant_scope

tenant_cli = AppGroup("tenant", help="Manage tenants.")


@tenant_cli.command("create")
@click.option("--org", required=True, help="Organization name.")
@click.option("--email", required=True, help="Email of the first user.")
@click.option("--password", required=True, help="Password of the first user.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tenant_create(org: str, email: str, password: str, as_json: bool) -> None:
    """Create a tenant with its first user and an API key."""
    try:
        tenant, _ = create_tenant(org, email, password)
        with tenant_scope(tenant.id):
            _, api_key = create_key("Created by the operator CLI")
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message if exc.message[:1].isupper() else f"{exc.field}: {exc.message}")
    if as_json:
        click.echo(json.dumps({"tenant_id": tenant.id, "api_key": api_key}))
    else:
        click.echo(f"Created tenant {tenant.id} ({org}).\nAPI key (shown once): {api_key}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop once the queue is empty (for tests and scripts).")
@click.option("--no-maintenance", is_flag=True,
              help="Do not run the sweep, retention and the scheduler's stand-in in this process.")
def worker_command(burst: bool, no_maintenance: bool) -> None:
    """Run a delivery worker with RQ's scheduler, the sweep of due deliveries and retention."""
    from rq import SimpleWorker

    from jobs import maintenance, pacing, scheduler
    from jobs.lanes import lanes
    from .queue import queue_names, redis_connection

    app = current_app._get_current_object()
    stop = threading.Event()
    if not burst:
        threading.Thread(target=pacing.run_forever, args=(app, stop), name="pacer", daemon=True).start()
    if not no_maintenance and not burst:
        threading.Thread(target=maintenance.run_forever, args=(app, stop), name="maintenance", daemon=True).start()
    # SimpleWorker runs jobs in this process: no fork per job (RQ's fork costs ~95 ms each),
    # and the app and its connection pools stay warm. Round robin over the tenant shards is
    # what keeps one tenant's flood from delaying the others.
    worker = SimpleWorker(queue_names(), connection=redis_connection())
    try:
        worker.work(with_scheduler=True, burst=burst, dequeue_strategy="round_robin")
    finally:
        # Attempts still in their lanes (slow receivers) end and are recorded before the process does.
        lanes.wait_idle(timeout=app.config["DELIVERY_TIMEOUT"] + 5)
        stop.set()
        scheduler.release()


secrets_cli = AppGroup("secrets", help="Manage the encryption of stored secrets.")


@secrets_cli.command("reencrypt")
@click.option("--batch", default=500, show_default=True, help="Endpoints per transaction.")
def secrets_reencrypt(batch: int) -> None:
    """Rewrite every stored signing secret with the current ENCRYPTION_KEY (after a key rotation).

    Secrets that the old keys in ENCRYPTION_KEYS_OLD encrypted are decrypted with them and encrypted again
    with the current key; afterwards the old keys can be removed. Safe to run again.
    """
    done, last_id = 0, ""
    with all_tenants():  # an operator's command over every tenant's endpoints
        while True:
            rows = db.session.execute(
                select(Endpoint.id, Endpoint.secret_encrypted, Endpoint.previous_secret_encrypted)
                .where(Endpoint.id > last_id).order_by(Endpoint.id).limit(batch)).all()
            if not rows:
                break
            for endpoint_id, current, previous in rows:
                try:
                    values = {"secret_encrypted": reencrypt(current),
                              "previous_secret_encrypted": reencrypt(previous) if previous else None}
                except RuntimeError as exc:
                    db.session.rollback()
                    raise click.ClickException(f"endpoint {endpoint_id}: {exc}; nothing after it was changed") from None
                db.session.execute(update(Endpoint).where(Endpoint.id == endpoint_id)
                                   .values(**values, updated_at=Endpoint.updated_at))
            db.session.commit()
            done += len(rows)
            last_id = rows[-1][0]
    click.echo(f"Re-encrypted the signing secrets of {done} endpoint{'s' * (done != 1)} with the current key.")


def register(app: Flask) -> None:
    app.cli.add_command(tenant_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(secrets_cli)
