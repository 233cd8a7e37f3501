"""Operator commands: ``flask --app webapp tenant create …`` and ``flask --app webapp worker``."""
from __future__ import annotations

import json
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .extensions import db
from .services.api_keys import create_key
from .services.common import ValidationError
from .services.tenants import create_tenant
from .tenancy import tenant_scope

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
@click.option("--no-maintenance", is_flag=True, help="Do not run the sweep and retention in this process.")
def worker_command(burst: bool, no_maintenance: bool) -> None:
    """Run a delivery worker with RQ's scheduler, the sweep of due deliveries and retention."""
    from rq import SimpleWorker

    from jobs import maintenance, pacing
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
        stop.set()


def register(app: Flask) -> None:
    app.cli.add_command(tenant_cli)
    app.cli.add_command(worker_command)
