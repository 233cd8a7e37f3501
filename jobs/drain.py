"""The drain job: attempt a tenant's due deliveries in batches. Ingest and the sweep wake it
(webapp/queue.py: one waiting drain serves every delivery committed before it starts). Each batch is
claimed in one statement, sent concurrently in per-endpoint lanes (jobs/lanes.py) and recorded in one
transaction, so RQ's bookkeeping and the commits are paid once per batch, not per delivery."""
from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from concurrent.futures import wait

from flask import current_app
from sqlalchemy import bindparam, func, or_, select, text, update

from webapp.extensions import db
from webapp.models import Delivery, utcnow
from webapp.queue import drain_started, others_waiting, wake_drain

from .attempts import Send, attempt, claimable, claimed, goes_unsent, lease, lease_from, prepare, record, trigger_of
from .context import job_context
from .delivery import put_back
from .lanes import SLOW_SECONDS, lanes
from .pacing import reserve_slots

log = logging.getLogger(__name__)
# Deliveries a drain claims at a time: enough to pay RQ's and the database's fixed costs once for many,
# few enough that tenants sharing a worker take turns often (the shards are served round robin; a batch
# waits at most SLOW_SECONDS for its receivers).
BATCH = 20
# A drain that no other job waits for claims this many at a time: it delays nobody, and each batch's round
# trips and commits are paid once for more deliveries. On PostgreSQL a drain is bound by those, not by CPU
# (the machine was a third idle): 50 at a time raised the workers' capacity on a backlog from 0.40-0.45x
# the raw ceiling to 0.60-0.73x, and on SQLite from 0.77-0.98x to 0.84-1.14x (two runs each,
# bench/throughput.py, 2026-11-28), with ingest and half-rate latency unchanged. Whether it is alone is
# asked when it starts and whenever its turn is renewed; another tenant's job that comes meanwhile waits for
# at most one such batch and the rest of the turn.
LONE_BATCH = 50
# A drain's turn: it claims batch after batch for this long (each batch a claim and a commit, not a new
# job's ~28 Redis commands), then queues its successor behind the other tenants' drains on its shard.
TURN_SECONDS = 0.1
# While no other job waits on the delivery queues, a turn is renewed, up to this long in all: ending it would
# only queue the tenant's own next drain, and each new job costs RQ's bookkeeping. With events trickling in,
# a drain whose turns ended every 0.1 s made a job of every ~14 deliveries (bench: 142 jobs for 2,000).
LONGEST_TURN_SECONDS = 2.0
# After a short batch, a drain waits this long before its next claim. With events trickling in, claiming
# at once found one delivery a batch and ended many drains early, each then queued anew; waiting lets a few
# share the claim, the record and the job (bench: 103-141 jobs for 2,000 deliveries instead of 141-279, and
# 1.6-2.0 ms of worker CPU a delivery instead of 2.0-3.2). It adds at most this to a delivery's latency.
# 30 ms rather than 10 (bench/throughput.py, five runs each on 2026-11-28): a claim's fixed cost is shared
# by about three times as many deliveries, so the workers spent 0.64-0.79 ms of CPU a delivery instead of
# 0.90-1.17 at full speed and 1.0-1.4 instead of 1.9-2.4 at half of it, which left the web more of the two
# cores (ingest with the workers running 0.26-0.31x the raw ceiling instead of 0.22-0.29x). The price:
# accept-to-receipt p50 18-21 ms instead of 8-9 at half speed, p99 39-48 ms instead of 16-23.
LINGER_SECONDS = 0.03
# A drain whose claim found nothing claims again every LINGER_SECONDS for this long before it ends (within
# its turn, and unless another job waits for the worker): an empty claim is a cheap query, and a drain that
# ended costs the next event a new RQ job. Bench at a steady ~155 events/s, two runs each, interleaved:
# 0.11 jobs a delivery instead of 0.19, worker CPU 3.6-3.9 ms a delivery instead of 4.15-4.25, latency p50
# 8 ms instead of 6 (a lingering drain claims every 10 ms; a new job starts at once).
IDLE_SECONDS = 0.05


def _claim_batch(tenant_id: str, size: int = BATCH) -> list:
    """Lease up to ``size`` of the tenant's due deliveries, earliest first. None of an endpoint whose lane is
    full in this process, and no more than a lane's width of one that is slow to answer (the rest would wait
    in its lane while their claims ran out). Returns them as rows of ``attempts.claimed``.

    One statement chooses and claims (``_claim``). PostgreSQL skips rows that another worker is claiming
    at this moment and locks those it chooses; SQLite has one writer."""
    now = utcnow()
    full, slow = lanes.full(), lanes.slow()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_CLAIM_SETTINGS)  # for the rest of this transaction, which sorts nothing else
    ids = db.session.scalars(_claim(bool(full), bool(slow), size), dict(
        tenant=tenant_id, now=now, lease=lease_from(now), full=full, slow=slow, width=lanes.width)).all()
    return claimed(tenant_id, ids) if ids else []


# PostgreSQL, for the choice: walk ix_deliveries_tenant_due in order and stop at the batch. On a table never
# analyzed (a new database, until autovacuum's first ANALYZE), the planner read and sorted every due row of
# the tenant for each claim instead: EXPLAIN ANALYZE with 6,000 due, 10-13 ms against 0.35 ms, and 0.28-0.38x
# the raw ceiling for the benchmark's delivery capacity. The settings are local (as SET LOCAL): they last
# until the claim's commit, and nothing else in that transaction sorts (attempts.claimed orders its rows in
# Python). A sort that a claim cannot do without (the window of one that ranks a slow endpoint's rows) then
# costs 10^10 in the plan, far above jit_above_cost: PostgreSQL compiled that claim with LLVM every time,
# 120-180 ms for 0.6 ms of work (auto_explain; bench/throughput.py's slow-receiver rounds delivered 450-500 a
# second instead of ~1,900). So JIT is off for the transaction too: no claim is long enough to gain from it.
_CLAIM_SETTINGS = text("SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)")


# The claim's statements are built once, with parameters: on a short queue, building and hashing a statement
# cost more than running it. Core: the tenant is spelled out.
_deliveries = Delivery.__table__


@functools.cache
def _choice(skip_full: bool, rank_slow: bool, size: int):
    # "tenant", not "tenant_id": the choice is part of an UPDATE (_claim), whose SET clause SQLAlchemy keeps
    # the columns' names for.
    chosen = (select(_deliveries.c.id, _deliveries.c.endpoint_id, _deliveries.c.next_attempt_at)
              .where(_deliveries.c.tenant_id == bindparam("tenant"), *claimable(bindparam("now")))
              .order_by(_deliveries.c.next_attempt_at).with_for_update(skip_locked=True))
    if skip_full:
        chosen = chosen.where(_deliveries.c.endpoint_id.not_in(bindparam("full", expanding=True)))
    if rank_slow:
        # Among the earliest due rows (bounded, so a backlog costs no more than a short one): number
        # each endpoint's, and keep a lane's width of the slow ones.
        due = chosen.limit(size * 5).subquery()
        ranked = select(due.c.id, due.c.endpoint_id, func.row_number().over(
            partition_by=due.c.endpoint_id, order_by=(due.c.next_attempt_at, due.c.id)).label("n")).subquery()
        chosen = select(ranked.c.id).where(or_(ranked.c.n <= bindparam("width"),
                                               ranked.c.endpoint_id.not_in(bindparam("slow", expanding=True))))
    return chosen.limit(size)


@functools.cache
def _claim(skip_full: bool, rank_slow: bool, size: int):
    """Choose and lease in one statement (a round trip less a batch than choosing, then leasing by id). The
    choice is a MATERIALIZED common table expression, which PostgreSQL and SQLite run once, as written (its
    LIMIT and SKIP LOCKED included); as a plain IN subquery PostgreSQL could run it again for every due row
    and claim more than the batch. The UPDATE finds the chosen rows by primary key and checks nothing else:
    PostgreSQL holds them locked from the choice on, and SQLite's UPDATE holds the write lock before it reads.
    (Repeating the claim's conditions there led PostgreSQL, on a table it had not analyzed yet, to walk every
    due row of the tenant for each chosen one: 52 ms for a batch of 50 with 4,000 due, against 1.6 ms.) Not
    even the tenant's, which the choice has already applied: with it, a plan made while the table was small
    (cached on the connection, or with no statistics at all) walked every row the tenant ever had, delivered
    or not, for each claim: 10-14 ms at 3,200 rows, growing with the history."""
    chosen = _choice(skip_full, rank_slow, size).cte("chosen").prefix_with("MATERIALIZED")
    return (update(_deliveries)
            .where(_deliveries.c.id == chosen.c.id)
            .values(lease(bindparam("lease"))).returning(_deliveries.c.id))


def _record_later(app, tenant_id: str, send: Send, future) -> None:
    """Record an attempt that outlasted its drain's patience, in the lane thread that made it."""
    try:
        with job_context(tenant_id, app):
            record(tenant_id, [(send, future.result())])
            # Its lane has room again: deliveries left for it can be claimed. (In the app context: outside
            # it this raised, and the rest waited for the sweep.)
            wake_drain(tenant_id)
    except Exception:  # the claim runs out and the sweep queues the delivery again; logged with its traceback
        log.exception("could not record the attempt of delivery %s", send.delivery_id)


def _hold_paced(tenant_id: str, batch: list) -> list:
    """Give the batch's deliveries to paced endpoints their endpoints' next slots and hold them aside until
    then (``delivery.put_back``: their own jobs send them, one at each slot), in the claim's transaction;
    returns the rest of the batch. A burst to a paced endpoint then costs a claim and a put-back a batch,
    not a job a delivery queued ahead of the tenant's other deliveries. (A scheduled delivery to a disabled
    endpoint stays in the batch: prepare() settles it.)"""
    paced = defaultdict(list)
    for row in batch:
        if row.rate_limit and not goes_unsent(row):
            paced[row.endpoint_id].append(row)
    if not paced:
        return batch
    held = []
    for rows in paced.values():  # earliest due first (claimed() sorts them), so earliest slot first
        slots = reserve_slots(rows[0].endpoint_id, rows[0].rate_limit, len(rows))
        held += [(row, slot, trigger_of(row)) for row, slot in zip(rows, slots)]
    put_back(tenant_id, held)
    held_ids = {row.id for row, _, _ in held}
    return [row for row in batch if row.id not in held_ids]


def _drain_batch(app, tenant_id: str, size: int) -> int:
    """Claim up to ``size``, attempt them, record what ended within the patience; returns how many were
    claimed."""
    claimed_rows = _claim_batch(tenant_id, size)
    batch = _hold_paced(tenant_id, claimed_rows)
    # The claims are ours: commit before signing the batch, so that SQLite's one writer (whom every ingest
    # waits for) is not held while the secrets are decrypted and the bodies signed.
    db.session.commit()
    sends = prepare(batch)
    db.session.commit()  # what prepare settled (a disabled endpoint's deliveries); usually nothing
    futures = {lanes.submit(send.endpoint_id, attempt, send): send for send in sends}
    expected_slow = {f for f, send in futures.items() if lanes.is_slow(send.endpoint_id)}
    # Wait a moment for the batch, not for a slow receiver: its lane records it when it answers.
    done, slow = wait(futures.keys() - expected_slow, timeout=SLOW_SECONDS)
    for future in slow:
        lanes.mark_slow(futures[future].endpoint_id)
    for future in slow | expected_slow:
        future.add_done_callback(lambda f, send=futures[future]: _record_later(app, tenant_id, send, f))
    if done:
        record(tenant_id, [(futures[future], future.result()) for future in done])
    return len(claimed_rows)


def _linger(tenant_id: str, until: float) -> bool:
    """After a claim that found nothing: whether to claim again (IDLE_SECONDS)."""
    return time.monotonic() < until and not others_waiting(tenant_id)


def deliver_due(tenant_id: str) -> None:
    """The drain job: attempt the tenant's due deliveries batch after batch, for one turn at most (renewed
    while no other job waits, up to LONGEST_TURN_SECONDS)."""
    drain_started(tenant_id)  # from here on, a wake-up queues a new drain: nothing committed is missed
    started = time.monotonic()
    turn_ends, last_turn_ends = started + TURN_SECONDS, started + LONGEST_TURN_SECONDS
    with job_context(tenant_id):
        app = current_app._get_current_object()
        # Batch after batch until none is due: with events arriving one by one, the next claim usually finds
        # those that came during this batch, which is cheaper than their own job.
        idle_ends = time.monotonic() + IDLE_SECONDS
        size = BATCH if others_waiting(tenant_id) else LONE_BATCH
        while (count := _drain_batch(app, tenant_id, size)) or _linger(tenant_id, min(idle_ends, last_turn_ends)):
            if time.monotonic() > turn_ends:
                if time.monotonic() > last_turn_ends or others_waiting(tenant_id):
                    break
                turn_ends, size = time.monotonic() + TURN_SECONDS, LONE_BATCH  # nobody waits: alone again
            if count:
                idle_ends = time.monotonic() + IDLE_SECONDS
            if count < size:
                time.sleep(LINGER_SECONDS)  # let the next few events arrive and share the next batch
        else:
            return  # nothing (more) is due now; what is committed later wakes a drain of its own
    wake_drain(tenant_id)  # more may be due: at the back of the shard's queue, so other tenants go first
