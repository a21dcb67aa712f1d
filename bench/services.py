"""Shared set-up of the benchmarks: fresh real services, the `huiyin` processes under test and readings of
their resources from Linux's /proc."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from integrations.backend.reference import free_port

__all__ = [
    "DIALOGS_PER_RESIDENT",
    "DIALOG_STEPS",
    "appeal_request",
    "appeal_turn",
    "chatter_request",
    "client_session",
    "count_rows",
    "cpu_seconds",
    "free_port",
    "percentile",
    "prepare_real_services",
    "rss_mb",
    "spawn_huiyin",
    "start_server",
    "stop_process",
    "wait_ready",
    "warmup_waves",
]


DIALOG_STEPS = 4
"""An appeal dialog as the benchmarks send it: the report, "no photo", "no phone", confirm."""
# No two alike enough for the duplicate check (bot/appeals/duplicates.py), as all of one resident's
# reports are at one place: tests/test_bench.py files all of them.
_ISSUES = (
    "楼道灯坏了好几天了",
    "电梯门关不上，一直报警",
    "楼下的垃圾好几天没人清运了",
    "楼梯扶手松动摇晃得厉害",
    "楼顶漏水，墙都泡了",
    "楼道墙皮一大片脱落了",
    "单元门口的台阶塌了一块",
    "楼道的窗户玻璃碎了",
)
DIALOGS_PER_RESIDENT = len(_ISSUES)
"""How many dialogs of one resident file new appeals: the next one repeats the first report at the same
place, which the duplicate check answers with an offer to join instead."""


def appeal_turn(who: int, step: int) -> str:
    """The text of resident ``who``'s ``step``-th message (counting from 0 over all their dialogs).

    Each resident reports at a place of their own (building ``who // 4 + 1``, unit ``who % 4 + 1``) and
    something else in each new dialog, so that every confirmation files a new appeal: repeating one report
    would meet the duplicate check (bot/appeals/duplicates.py) and measure offers to join instead.
    """
    dialog, s = divmod(step, DIALOG_STEPS)
    if s == 0:
        return f"{who // 4 + 1}栋{who % 4 + 1}单元{_ISSUES[dialog % len(_ISSUES)]}"
    return ("跳过", "不留", "/confirm")[s - 1]


def appeal_request(who: int, step: int) -> dict[str, Any]:
    """The REST body of resident ``who``'s ``step``-th message (:func:`appeal_turn`): the report and the
    photo step in the group "bench-dialog-group" (the report addressed to the bot), the contact and the
    confirmation in the private chat the dialog moves to; message ids ``d{who}-{step + 1}``."""
    text = appeal_turn(who, step)
    sender = f"res-{who}"
    meta: dict[str, Any]
    if step % DIALOG_STEPS < 2:
        meta = {"chat_id": "bench-dialog-group", "chat_type": "group", "user_name": f"居民{who}"}
    else:
        meta = {"chat_type": "private", "chat_id": sender}
    if step % DIALOG_STEPS == 0:
        text = "@回音 " + text
    meta["message_id"] = f"d{who}-{step + 1}"
    return {"sender": sender, "message": text, "metadata": meta}


def chatter_request(i: int) -> dict[str, Any]:
    """The REST body of the ``i``-th group chatter message: not addressed to the bot (which stays silent
    and records nothing), from 200 senders in 20 groups, message id ``c{i}``."""
    return {
        "sender": f"chat-{i % 200}",
        "message": f"今天第{i}次说话，大家晚上好呀",
        "metadata": {"chat_id": f"bench-group-{i % 20}", "chat_type": "group", "message_id": f"c{i}"},
    }


def warmup_waves(residents: int) -> list[list[int]]:
    """The residents of each wave of the dialog warm-up, in order (each wave sent once the one before
    has been answered: a resident answers once the bot has asked).

    Every resident goes through a whole dialog, confirmation included, so that every kind of turn has
    run before a measurement (caches, the pool's connections and their prepared statements); then
    resident ``r`` is taken on to step ``r % DIALOG_STEPS`` of their next dialog, so the residents are
    spread evenly over the dialog's steps and every second of the measurement has the same mix of turns.
    """
    return [
        [r for r in range(residents) if DIALOG_STEPS + r % DIALOG_STEPS >= k]
        for k in range(1, 2 * DIALOG_STEPS)
    ]


def client_session(limit: int = 64) -> aiohttp.ClientSession:
    """The load generator's HTTP client: aiohttp, at most ``limit`` connections, kept alive 2 minutes.

    Not httpx: its client costs ~2 ms of CPU per request here (aiohttp ~0.12 ms), so on 2 shared cores it
    measured the load generator more than the server.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=120),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def prepare_real_services(database_url: str, redis_url: str) -> None:
    """Drop and re-create the database named in ``database_url`` and flush ``redis_url``'s database."""
    import asyncpg  # type: ignore[import-untyped]

    from bot.state import connect

    admin = database_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    client = connect(redis_url)  # a redis+cluster:// URL flushes every primary
    await client.flushdb()
    await client.aclose()


async def count_rows(database_url: str, table: str) -> int:
    """How many rows ``table`` has (a benchmark's check that it did what it says it measures)."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))
    finally:
        await conn.close()


def spawn_huiyin(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``python -m bot <command>`` (this interpreter) with exactly the environment ``env``."""
    return subprocess.Popen([sys.executable, "-m", "bot", *command], env=env)


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``huiyin serve`` on a free loopback port; returns the process and its base URL.

    The server is not ready yet when this returns: :func:`wait_ready` waits for it.
    """
    port = free_port()
    return spawn_huiyin(["serve", "--port", str(port)], env), f"http://127.0.0.1:{port}"


async def wait_ready(client: httpx.AsyncClient, base: str) -> None:
    """Poll ``{base}/readyz`` every 0.2 s until it answers 200; RuntimeError after about a minute."""
    for _ in range(300):
        try:
            if (await client.get(base + "/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("server did not become ready")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM ``proc`` and wait up to ``timeout_s`` for it to exit; kill it if it does not."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values`` by the nearest rank; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """Process ``pid``'s resident set size now and at its peak (VmRSS, VmHWM), in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
