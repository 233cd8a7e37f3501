"""The delivery log at scale: bulk-load a tenant's history, then time the log page and the deliveries API.

Used by bench/throughput.py (``--scale ROWS``). The loader writes straight into the database with
SQLAlchemy Core in large batches (as retention would find a busy tenant's last 30 days): events with
one delivery per endpoint, mostly succeeded, some failed, retrying or pending, and each attempted
delivery's attempts (with the tallies of endpoint health and the chart), ids spread over the days so that
keyset pages, filters and the dashboard's 24-hour statistics meet realistic data.
"""
from __future__ import annotations

import json
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

import requests
from sqlalchemy import create_engine, insert

from webapp.ids import new_id
from webapp.models import Attempt, Delivery, Event
from webapp.services import tallies

BATCH = 20_000
STATUSES = ["succeeded"] * 90 + ["failed"] * 6 + ["retrying"] * 3 + ["pending"]


def load(database_url: str, tenant_id: str, agent_id: str, endpoint_ids: list[str], rows: int,
         days: float = 30, seed: int = 1) -> float:
    """Insert ``rows`` deliveries (with their events and attempts) for the tenant; returns the seconds it took."""
    rng = random.Random(seed)
    engine = create_engine(database_url)
    now = datetime.now(timezone.utc) - timedelta(minutes=5)  # older than anything the run itself made
    events_needed = -(-rows // len(endpoint_ids))
    started = time.monotonic()
    made = 0
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
        for first in range(0, events_needed, BATCH // len(endpoint_ids)):
            events, deliveries, attempts = [], [], []
            for seq in range(first, min(events_needed, first + BATCH // len(endpoint_ids))):
                at = now - timedelta(seconds=days * 86400 * (1 - seq / events_needed))  # oldest first
                event_id = new_id("evt", at)
                body = json.dumps({"id": event_id, "type": "message.received", "conversation_id": f"conv-{seq}",
                                   "data": {"text": "hello"}})
                events.append({"id": event_id, "tenant_id": tenant_id, "type": "message.received",
                               "agent_id": agent_id, "conversation_id": f"conv-{seq}", "occurred_at": at,
                               "received_at": at, "body": body})
                for endpoint_id in endpoint_ids:
                    if made >= rows:
                        break
                    status = rng.choice(STATUSES)
                    final = status in ("succeeded", "failed")
                    delivery_id = new_id("dlv", at)
                    tries = 0 if status == "pending" else 1 if status == "succeeded" and rng.random() < 0.95 \
                        else rng.randint(1, 8)
                    last_at = at + timedelta(seconds=30 * (tries - 1)) if tries else None
                    deliveries.append({
                        "id": delivery_id, "tenant_id": tenant_id, "event_id": event_id,
                        "endpoint_id": endpoint_id, "event_type": "message.received", "agent_id": agent_id,
                        "status": status, "attempt_count": tries,
                        # Not due: the bench's workers must not start on history (retrying ones are due later).
                        "next_attempt_at": None if final else now + timedelta(days=1),
                        "manual_pending": False, "last_attempt_at": last_at,
                        "last_response_status": (200 if status == "succeeded" else 503) if tries else None,
                        "last_error": None, "created_at": at, "updated_at": at})
                    for n in range(tries):  # the last one decides; those before it answered 503
                        tried_at = at + timedelta(seconds=30 * n)
                        code = 200 if status == "succeeded" and n == tries - 1 else 503
                        attempts.append({
                            "id": new_id("att", tried_at), "tenant_id": tenant_id, "delivery_id": delivery_id,
                            "endpoint_id": endpoint_id, "trigger": "scheduled", "started_at": tried_at,
                            "duration_ms": 5 + int(rng.expovariate(1 / 60)), "response_status": code, "error": None,
                            "response_body": "ok" if code == 200 else "busy",
                            "request_headers": {"webhook-id": event_id, "content-type": "application/json"}})
                    made += 1
            connection.execute(insert(Event.__table__), events)
            connection.execute(insert(Delivery.__table__), deliveries)
            connection.execute(insert(Attempt.__table__), attempts)
            tallies.add(connection, tenant_id, attempts)  # as the worker counts them for endpoint health
            tallies.add_deliveries(connection, tallies.delivery_rows(tenant_id, [  # and the deliveries for the chart
                tallies.Change(d["id"], d["endpoint_id"], None, d["status"]) for d in deliveries]))
    engine.dispose()
    return time.monotonic() - started


def log_in(base: str, email: str, password: str) -> requests.Session:
    """A browser-like session logged in through the real form."""
    import re

    session = requests.Session()
    page = session.get(f"{base}/login", timeout=30).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page)
    answer = session.post(f"{base}/login", data={"email": email, "password": password, "csrf_token": token.group(1)},
                          timeout=30, allow_redirects=False)
    if answer.status_code != 302:
        raise RuntimeError(f"log-in failed with {answer.status_code}")
    return session


def timings(session: requests.Session, url: str, requests_: int = 40, warmup: int = 3) -> dict:
    """p50 and p95 (ms) of GET url, one request at a time on a keep-alive session, after a warm-up."""
    samples = []
    for i in range(warmup + requests_):
        started = time.perf_counter()
        response = session.get(url, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        if i >= warmup:
            samples.append(elapsed)
    return {**_p50_p95(samples), "bytes": len(response.content)}


def walk_timings(session: requests.Session, url: str, pages: int = 40) -> dict:
    """p50 and p95 (ms) of the pages of a GET /api/v1/deliveries list, each fetched with the cursor the one
    before it gave, as a client reading a tenant's history does (a statement run many times over with new
    values: on PostgreSQL, the case for a plan made once for any values)."""
    samples, cursor = [], None
    for _ in range(pages):
        started = time.perf_counter()
        response = session.get(url, params={"cursor": cursor} if cursor else None, timeout=60)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        if not (cursor := response.json()["next_cursor"]):
            break
    return {**_p50_p95(samples), "pages": len(samples)}


def _p50_p95(samples: list[float]) -> dict:
    samples = sorted(samples)
    return {"p50": statistics.median(samples), "p95": samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]}
