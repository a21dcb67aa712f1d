"""Soak benchmark: `huiyin serve` (one process, or ``--servers`` of them on one database and one Redis)
held at a steady mixed load for minutes, on real Redis + PostgreSQL.

    .venv/bin/python -m bench.soak [--duration 600] [--rate 500] [--dialog-percent 20] [--warmup 30]
                                   [--servers 1] [--database-url URL] [--redis-url URL] [--rss-margin-mb 25]

With several servers the generator is their load balancer, without stickiness: message ``i`` goes to
server ``i % servers``, so one resident's dialog moves from process to process at every turn, as behind
a round-robin balancer (the dialog state is in Redis, not in a process).

The load is open loop: message ``i`` is due ``i / rate`` seconds after the start and is sent then,
whether or not earlier ones have been answered, so a slow server cannot slow the load down; a send
that leaves more than ``--late-ms`` behind its schedule (the load generator itself fell behind: it
shares the machine's cores with the server) is counted late. Of every 100 messages, ``--dialog-percent``
are dialog turns and the rest group chatter the bot ignores (`bench.services.chatter_request`), evenly
interleaved. The dialog turns are the appeal dialogs of `bench.rest_bench` (`bench.services.appeal_request`:
the report with its place, no photo, no phone, confirm), 200 residents at a time, each at a different
step; a resident who has filed `DIALOGS_PER_RESIDENT` appeals hands over to a new one (another place),
so that every confirmation files a new appeal for as long as the soak runs. A resident's turn is
never sent while their previous one is unanswered: it is skipped (target 0; at 500 msg/s a resident's
turns are 2 s apart), and the resident goes on from the same step at their next turn.
A resident one of whose turns went wrong (an error above) is left, and a new resident takes their
place from a new report: the rest of their dialog would be out of step and only repeat the error.

Before the measurement: the dialog warm-up of `bench.rest_bench` (`bench.services.warmup_waves`), then
``--warmup`` seconds of the mixed load, not measured, so that the server's caches and pools have filled
before its resident set size is taken as the start.

It reports:

- errors by kind of message and cause (HTTP status, timeout, connection error, chatter answered,
  a dialog turn unanswered, a confirmation not answered as filed); target 0, warm-up included;
- latency p50/p99 of chatter, dialog turns (report, photo, contact) and confirmations, from the send to
  the whole answer; reported, and a target only with ``--p99-ms``;
- throughput: asked, sent (and how many sends were late, target ≤ ``--max-late-percent``), and answered
  (HTTP answers of any status over the time from the first send to the last answer, target ≥ 99 % of
  asked: a server that falls behind answers its backlog after the last send);
- the server's RSS (VmRSS; with several servers, their sum) when ready, at the start of the measurement, every ``--rss-every`` seconds
  (default a minute; a fifth of the run when it is shorter than five minutes) and at the end; the
  least-squares slope over the measurement; target: end − start ≤ ``--rss-margin-mb``;
- appeals lost: every confirmation answered as filed names its appeal id; each must be in the database
  exactly once afterwards, and no id may be answered twice (target 0 missing, 0 duplicated).

It exits 1 when a target is missed. The database is a fresh one (`huiyin_soak` by default, dropped and
created); Redis database 12 (rest_bench and turn_profile use 14, platform_bench and forward_bench 13,
the tests 15) is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shlex
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

from bench.services import (
    DIALOG_STEPS,
    DIALOGS_PER_RESIDENT,
    appeal_request,
    chatter_request,
    client_session,
    cpu_seconds,
    percentile,
    prepare_real_services,
    rss_mb,
    start_server,
    stop_process,
    wait_ready,
    warmup_waves,
)

URL = "/webhooks/rest/webhook"
RESIDENTS = 200
"""Residents in the middle of a dialog at any time (as in `bench.rest_bench`)."""
KINDS = ("chatter", "turn", "confirm")
LABELS = {"chatter": "chatter", "turn": "dialog turn", "confirm": "confirmation"}
FILED = re.compile(r"已提交，诉求编号 ([A-Z]+-\d{8}-\d{4,})")
"""A confirmation answered as filed (dialogs/responses.yml, appeal.created); the group's notice and an
"already filed" answer name the id too, but only this one says this confirmation filed it."""


@dataclass(frozen=True)
class Message:
    kind: str
    """"chatter", "turn" (a dialog step before the confirmation), "confirm", or "skipped" (a dialog turn
    due while its resident still waits for the answer to their previous one: not sent)."""
    who: int | None
    """The resident of a dialog turn (None for chatter)."""
    body: dict[str, Any]


class Workload:
    """The soak's messages in the order they are sent.

    ``dialog_percent`` of every 100 messages are dialog turns, spread evenly among the chatter. Dialog
    turns go round-robin over ``residents`` slots; the resident in a slot moves one step on at each of
    their turns, and once they have filed `DIALOGS_PER_RESIDENT` appeals the slot passes to a new
    resident (a new place, see `bench.services.appeal_turn`) at the same point of the cycle, so the mix
    of dialog steps stays the same.
    """

    def __init__(self, dialog_percent: int = 20, residents: int = RESIDENTS) -> None:
        if not 0 <= dialog_percent <= 100:
            raise ValueError("dialog_percent must be between 0 and 100")
        self.dialog_percent = dialog_percent
        self.step: list[int] = [0] * residents
        """Messages each resident has sent so far (index: resident)."""
        self.abandoned: set[int] = set()
        """Residents one of whose turns went wrong: their dialog is out of step with what the workload
        would send next, so their slot passes to a new resident (their later turns would only count the
        same error again)."""
        self._slots = list(range(residents))
        self._slot = 0
        self._sent = 0
        self._chatter = 0

    @property
    def residents(self) -> int:
        """Residents who have taken part so far."""
        return len(self.step)

    def turn(self, who: int) -> Message:
        """Resident ``who``'s next message."""
        s = self.step[who]
        self.step[who] += 1
        kind = "confirm" if s % DIALOG_STEPS == DIALOG_STEPS - 1 else "turn"
        return Message(kind, who, appeal_request(who, s))

    def warmup(self) -> list[list[Message]]:
        """The dialog warm-up of `bench.rest_bench`, wave by wave (`bench.services.warmup_waves`)."""
        return [[self.turn(who) for who in wave] for wave in warmup_waves(len(self._slots))]

    def next(self, waiting: Container[int] = ()) -> Message:
        """The next message; a dialog turn of a resident in ``waiting`` (their previous turn is still
        unanswered) is "skipped", and that resident sends the turn at their next slot instead."""
        i = self._sent
        self._sent += 1
        if (i + 1) * self.dialog_percent // 100 > i * self.dialog_percent // 100:
            j = self._slot
            self._slot = (j + 1) % len(self._slots)
            who = self._slots[j]
            if self.step[who] >= DIALOGS_PER_RESIDENT * DIALOG_STEPS or who in self.abandoned:
                self._slots[j] = len(self.step)
                self.step.append(0)
            who = self._slots[j]
            if who in waiting:
                return Message("skipped", who, {})
            return self.turn(who)
        c = self._chatter
        self._chatter += 1
        return Message("chatter", None, chatter_request(c))


def check_reply(kind: str, status: int, body: bytes) -> tuple[str | None, str | None]:
    """What the answer to a message of ``kind`` says: (the error, or None; the appeal id a confirmation
    was answered as filed with, or None)."""
    if status != 200:
        return f"HTTP {status}", None
    if kind == "chatter":
        return (None if body == b"[]" else "answered"), None
    try:
        replies = json.loads(body)
    except ValueError:
        return "not JSON", None
    if not replies:
        return "unanswered", None
    if kind == "confirm":
        for reply in replies:
            found = FILED.search(str(reply.get("text") or ""))
            if found:
                return None, found.group(1)
        return "not filed", None
    return None, None


@dataclass
class Phase:
    """What one phase of the load gave."""

    latencies: dict[str, array[float]] = field(default_factory=lambda: {k: array("d") for k in KINDS})
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    """The first answer of each kind of error, to see what went wrong."""
    filed: list[str] = field(default_factory=list)
    sent: int = 0
    late: int = 0
    max_lag_ms: float = 0.0
    responses: int = 0
    """HTTP answers of any status (the throughput; errors are counted apart)."""
    skipped: int = 0
    """Dialog turns not sent: due while their resident still waited for an answer."""
    started: float = 0.0
    last_sent: float = 0.0
    last_answer: float = 0.0

    @property
    def ok(self) -> int:
        """Messages answered as they should be."""
        return sum(len(v) for v in self.latencies.values())

    def error(self, kind: str, cause: str, example: str) -> None:
        key = f"{LABELS[kind]}: {cause}"
        self.errors[key] += 1
        self.examples.setdefault(key, example[:400])


async def _send(client: aiohttp.ClientSession, url: str, message: Message, phase: Phase) -> bool:
    """Send ``message`` and record what came back; False if it went wrong."""
    t = time.perf_counter()
    try:
        async with client.post(url, json=message.body) as r:
            body = await r.read()
            status = r.status
    except TimeoutError:
        phase.error(message.kind, "timeout", json.dumps(message.body, ensure_ascii=False))
        return False
    except aiohttp.ClientError as e:
        phase.error(message.kind, type(e).__name__, str(e))
        return False
    done = time.perf_counter()
    phase.responses += 1
    phase.last_answer = max(phase.last_answer, done)
    problem, public_id = check_reply(message.kind, status, body)
    if problem:
        sent = json.dumps(message.body, ensure_ascii=False)
        phase.error(message.kind, problem, f"{sent} → {body.decode(errors='replace')}")
        return False
    phase.latencies[message.kind].append((done - t) * 1000)
    if public_id:
        phase.filed.append(public_id)
    return True


async def drive(
    client: aiohttp.ClientSession,
    base: str | Sequence[str],
    messages: Callable[[Container[int]], Message],
    rate: float,
    count: int,
    phase: Phase,
    late_ms: float = 20.0,
    on_error: Callable[[int], None] | None = None,
) -> None:
    """Send ``count`` messages, message ``i`` at ``i / rate`` s from now (open loop), and wait for every
    answer, message ``i`` to ``base[i % len(base)]`` when ``base`` is several servers' base URLs.
    ``messages(waiting)`` gives each, ``waiting`` the residents whose turn is unanswered;
    ``on_error(resident)`` is told of each dialog turn that went wrong.

    A resident's turn is never sent while their previous turn is unanswered (a resident answers once
    the bot has asked): the workload skips it, it is counted, and the resident's dialog goes on at
    their next turn. (Waiting for the answer instead would chain a slow resident's turns one after the
    other, and a run against an overloaded server would outlast its schedule by as much as it likes.)
    """
    urls = [b + URL for b in ([base] if isinstance(base, str) else base)]
    in_flight: set[asyncio.Task[Any]] = set()
    waiting: set[int] = set()

    async def turn(url: str, message: Message, who: int) -> None:
        try:
            if not await _send(client, url, message, phase) and on_error is not None:
                on_error(who)
        finally:
            waiting.discard(who)

    start = time.perf_counter()
    phase.started = phase.started or start  # a phase may be several drives (the warm-up's waves)
    for i in range(count):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        lag_ms = (now - due) * 1000
        phase.max_lag_ms = max(phase.max_lag_ms, lag_ms)
        if lag_ms > late_ms:
            phase.late += 1
        message = messages(waiting)
        url = urls[i % len(urls)]
        if message.kind == "skipped":
            phase.skipped += 1
            continue
        if message.who is None:
            task: asyncio.Task[Any] = asyncio.create_task(_send(client, url, message, phase))
        else:
            waiting.add(message.who)
            task = asyncio.create_task(turn(url, message, message.who))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        phase.sent += 1
        phase.last_sent = now
    if in_flight:
        await asyncio.wait(in_flight)


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute; 0 with fewer than two."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mt) * (r - mr) for t, r in samples) / var * 60


@dataclass
class Targets:
    rss_margin_mb: float = 25.0
    max_late_percent: float = 1.0
    min_answered_percent: float = 99.0
    p99_ms: float | None = None


@dataclass
class Report:
    command: str
    rate: float
    duration: float
    dialog_percent: int
    warmup: Phase
    measured: Phase
    rss_ready: float
    rss: list[tuple[float, float]]
    """(seconds since the measurement began, VmRSS MB), the first at the start, the last at the end."""
    rss_samples: list[tuple[float, float]]
    """Every RSS sample of the measurement, a second apart (the slope's input)."""
    rss_every: float
    peak_mb: float
    appeals: dict[str, int]
    """Rows in the database of each appeal id a confirmation was answered as filed with."""
    appeal_rows: int
    """Appeals in the database in all."""
    residents: int
    abandoned: int
    """Residents left after one of their turns went wrong."""
    server_cpu_s: float
    own_cpu_s: float
    load: tuple[float, float]
    """Load average (1 min) at the start and at the end."""
    late_ms: float
    """A send this far behind its schedule counted late."""
    servers: int = 1
    """`huiyin serve` processes behind the generator (RSS and CPU are their sums)."""
    when: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    @property
    def filed(self) -> list[str]:
        return self.warmup.filed + self.measured.filed

    @property
    def errors(self) -> Counter[str]:
        return self.warmup.errors + self.measured.errors

    @property
    def lost(self) -> int:
        return sum(1 for public_id in set(self.filed) if self.appeals.get(public_id, 0) == 0)

    @property
    def duplicated(self) -> int:
        """Ids answered to more than one confirmation, or in more than one row."""
        answered_twice = sum(n - 1 for n in Counter(self.filed).values())
        return answered_twice + sum(n - 1 for n in self.appeals.values() if n > 1)

    @property
    def confirmation_errors(self) -> int:
        prefix = LABELS["confirm"] + ":"
        return sum(n for key, n in self.errors.items() if key.startswith(prefix))

    @property
    def answered_rate(self) -> float:
        m = self.measured
        window = m.last_answer - m.started
        return m.responses / window if window > 0 else 0.0

    @property
    def late_percent(self) -> float:
        return 100 * self.measured.late / self.measured.sent if self.measured.sent else 0.0

    @property
    def rss_growth(self) -> float:
        return self.rss[-1][1] - self.rss[0][1]

    def misses(self, targets: Targets) -> list[str]:
        out = []
        if self.errors:
            out.append(f"{sum(self.errors.values())} errors")
        if self.lost or self.duplicated:
            out.append(f"{self.lost} appeals lost, {self.duplicated} duplicated")
        if self.measured.skipped or self.warmup.skipped:
            out.append(f"{self.measured.skipped + self.warmup.skipped} dialog turns skipped")
        if self.late_percent > targets.max_late_percent:
            out.append(f"{self.late_percent:.1f} % of sends late")
        if self.answered_rate < self.rate * targets.min_answered_percent / 100:
            out.append(f"answered {self.answered_rate:.1f} of {self.rate:g} msg/s")
        if self.rss_growth > targets.rss_margin_mb:
            out.append(f"RSS grew {self.rss_growth:+.1f} MB")
        if targets.p99_ms is not None:
            for kind in KINDS:
                p99 = percentile(list(self.measured.latencies[kind]), 0.99)
                if p99 > targets.p99_ms:
                    out.append(f"{LABELS[kind]} p99 {p99:.1f} ms")
        return out

    def summary(self, targets: Targets) -> list[str]:
        m = self.measured
        lines = [
            f"huiyin soak — {self.when}, `{self.command}`",
            (
                "  one `huiyin serve`,"
                if self.servers == 1
                else f"  {self.servers} `huiyin serve` processes (round robin),"
            )
            + " real PostgreSQL + Redis,"
            f" load from the same machine ({os.cpu_count()} cores;"
            f" load average {self.load[0]:.2f} at the start, {self.load[1]:.2f} at the end)",
            f"  load:          asked {self.rate:g} msg/s for {self.duration:g} s ({100 - self.dialog_percent} %"
            f" chatter, {self.dialog_percent} % dialog turns, {self.residents} residents, {self.abandoned} of them"
            f" left after an error) after a"
            f" {m.started - self.warmup.started:.0f} s warm-up",
            f"  sent:          {m.sent} messages, {m.late} late (> {self.late_ms:g} ms behind"
            f" schedule, {self.late_percent:.2f} %; target ≤ {targets.max_late_percent:g} %), max lag"
            f" {m.max_lag_ms:.1f} ms; {m.skipped} dialog turns skipped, their resident still waiting (target 0)",
            f"  answered:      {m.responses} in {m.last_answer - m.started:.1f} s, {self.answered_rate:.1f} msg/s (target ≥ {targets.min_answered_percent:g} % of"
            f" {self.rate:g})",
        ]
        for kind in KINDS:
            values = list(m.latencies[kind])
            lines.append(
                f"  {LABELS[kind] + ':':<14} {len(values):7d}   p50 {percentile(values, 0.5):7.2f} ms"
                f"   p99 {percentile(values, 0.99):7.2f} ms   max {max(values, default=float('nan')):7.1f} ms"
                + (f"   (target p99 ≤ {targets.p99_ms:g} ms)" if targets.p99_ms is not None else "")
            )
        errors = self.errors
        lines.append(
            f"  errors:        {sum(errors.values())} (target 0)"
            + "".join(f"; {key} × {n}" for key, n in sorted(errors.items()))
        )
        lines.append(
            f"  appeals:       {len(self.filed)} confirmations answered as filed, {self.appeal_rows} appeals in"
            f" the database; {self.lost} lost, {self.duplicated} duplicated (target 0);"
            f" {self.confirmation_errors} confirmations answered with an error (target 0)"
        )
        marks = " → ".join(f"{t:.0f} s {r:.1f}" for t, r in self.rss)
        lines.append(
            ("  server RSS MB:" if self.servers == 1 else "  servers' RSS MB (sum):")
            + f" ready {self.rss_ready:.1f}; measurement (every {self.rss_every:g} s) {marks};"
            f" peak {self.peak_mb:.1f}"
        )
        lines.append(
            f"                 slope {slope_mb_per_min(self.rss_samples):+.2f} MB/min, end − start"
            f" {self.rss_growth:+.1f} MB (target ≤ +{targets.rss_margin_mb:g} MB)"
        )
        answered = self.warmup.responses + m.responses
        lines.append(
            f"  CPU:           server {self.server_cpu_s * 1000 / max(answered, 1):.2f} ms per message,"
            f" load generator {self.own_cpu_s * 1000 / max(answered, 1):.2f} ms (user + system, warm-up"
            " included)"
        )
        misses = self.misses(targets)
        lines.append(
            "  result:        " + ("all targets met" if not misses else "MISSED: " + "; ".join(misses))
        )
        return lines


def rss_marks(samples: list[tuple[float, float]], every: float) -> list[tuple[float, float]]:
    """The first sample, the first at or after each multiple of ``every`` seconds, and the last."""
    if not samples:
        return []
    out = [samples[0]]
    mark = every
    for t, r in samples[1:-1]:
        if t >= mark:
            out.append((t, r))
            while mark <= t:
                mark += every
    if len(samples) > 1:
        out.append(samples[-1])
    return out


async def _appeal_rows(database_url: str, ids: list[str]) -> tuple[dict[str, int], int]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT public_id, count(*) AS n FROM appeal WHERE public_id = ANY($1::text[]) GROUP BY public_id",
            sorted(set(ids)),
        )
        total = int(await conn.fetchval("SELECT count(*) FROM appeal"))
    finally:
        await conn.close()
    return {r["public_id"]: int(r["n"]) for r in rows}, total


def _rss_sum(pids: Sequence[int]) -> float:
    return sum(rss_mb(pid)[0] for pid in pids)


async def _sample_rss(pids: Sequence[int], start: float, samples: list[tuple[float, float]]) -> None:
    while True:
        samples.append((time.perf_counter() - start, _rss_sum(pids)))
        await asyncio.sleep(1.0)


def _in_order(messages: list[Message]) -> Callable[[Container[int]], Message]:
    """``messages`` one after the other, as `drive` asks for them (a wave of the warm-up is sent once
    the one before has been answered, so nobody in it is waiting)."""
    it = iter(messages)
    return lambda _waiting: next(it)


async def run(args: argparse.Namespace, command: str) -> Report:
    await prepare_real_services(args.database_url, args.redis_url)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "HUIYIN_DATA_DIR": tempfile.mkdtemp(prefix="huiyin-soak-"),
        "HUIYIN_LOG_LEVEL": "warning",
    }
    load0 = os.getloadavg()[0]
    workload = Workload(args.dialog_percent)
    warm, measured = Phase(), Phase()
    samples: list[tuple[float, float]] = []
    started = [start_server(env) for _ in range(args.servers)]
    servers = [proc for proc, _ in started]
    base = [url for _, url in started]
    pids = [proc.pid for proc in servers]
    try:
        async with httpx.AsyncClient(timeout=30) as probe:
            for url in base:
                await wait_ready(probe, url)
        rss_ready = _rss_sum(pids)
        cpu0, own0 = sum(map(cpu_seconds, pids)), cpu_seconds(os.getpid())
        # What the generator holds from here on is mostly its records of latencies (arrays, untracked):
        # freezing what exists keeps its full collections short, so they hardly delay a send.
        gc.collect()
        gc.freeze()
        async with client_session(limit=256) as client:
            for wave in workload.warmup():
                await drive(client, base, _in_order(wave), 100, len(wave), warm, args.late_ms)
            await drive(
                client,
                base,
                workload.next,
                args.rate,
                int(args.rate * args.warmup),
                warm,
                args.late_ms,
                workload.abandoned.add,
            )
            start = time.perf_counter()
            sampler = asyncio.create_task(_sample_rss(pids, start, samples))
            try:
                await drive(
                    client,
                    base,
                    workload.next,
                    args.rate,
                    int(args.rate * args.duration),
                    measured,
                    args.late_ms,
                    workload.abandoned.add,
                )
            finally:
                sampler.cancel()
            samples.append((time.perf_counter() - start, _rss_sum(pids)))
        peak = sum(rss_mb(pid)[1] for pid in pids)
        cpu1, own1 = sum(map(cpu_seconds, pids)), cpu_seconds(os.getpid())
    finally:
        for server in servers:
            stop_process(server)
    filed = warm.filed + measured.filed
    appeals, total = await _appeal_rows(args.database_url, filed)
    every = args.rss_every or (60.0 if args.duration >= 300 else args.duration / 5)
    return Report(
        command=command,
        rate=args.rate,
        duration=args.duration,
        dialog_percent=args.dialog_percent,
        warmup=warm,
        measured=measured,
        rss_ready=rss_ready,
        rss=rss_marks(samples, every),
        rss_every=every,
        peak_mb=peak,
        appeals=appeals,
        appeal_rows=total,
        residents=workload.residents,
        abandoned=len(workload.abandoned),
        server_cpu_s=cpu1 - cpu0,
        own_cpu_s=own1 - own0,
        load=(load0, os.getloadavg()[0]),
        rss_samples=samples,
        late_ms=args.late_ms,
        servers=args.servers,
    )


def own_redis_db(url: str) -> bool:
    """Whether ``url`` names a Redis database the soak may flush: a numbered one on a single server,
    not 0 (everyone's default) or 15 (the tests'). A cluster has only database 0."""
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return parts.scheme in ("redis", "rediss") and db.isdigit() and int(db) not in (0, 15)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of measured load (600)")
    ap.add_argument("--rate", type=float, default=500.0, help="messages per second asked (500)")
    ap.add_argument("--dialog-percent", type=int, default=20, help="dialog turns per 100 messages (20)")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds of unmeasured mixed load first (30)")
    ap.add_argument(
        "--servers", type=int, default=1, help="`huiyin serve` processes, sent to round robin (1)"
    )
    ap.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_soak")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--late-ms", type=float, default=20.0, help="a send this far behind schedule is late")
    ap.add_argument("--max-late-percent", type=float, default=1.0, help="target: late sends at most (1 %%)")
    ap.add_argument("--rss-margin-mb", type=float, default=25.0, help="target: RSS end − start at most")
    ap.add_argument("--rss-every", type=float, default=0.0, help="report RSS every this many seconds")
    ap.add_argument("--p99-ms", type=float, help="target: p99 of every kind at most (default: report only)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not own_redis_db(args.redis_url):
        raise SystemExit(
            "the soak flushes its Redis database: give it a redis:// URL of a database of its own, not 0 or 15"
        )
    command = " ".join(["python -m bench.soak", *map(shlex.quote, argv)])
    report = asyncio.run(run(args, command))
    targets = Targets(
        rss_margin_mb=args.rss_margin_mb, max_late_percent=args.max_late_percent, p99_ms=args.p99_ms
    )
    print("\n".join(report.summary(targets)))
    for key, example in sorted({**report.warmup.examples, **report.measured.examples}.items()):
        print(f"  e.g. {key}: {example}", file=sys.stderr)
    return 1 if report.misses(targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())
