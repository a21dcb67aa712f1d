"""A surge of reports of one outage: ``--reports`` residents of ``--groups`` building groups report 停水
within ``--seconds`` (open loop, evenly spread), in-process through the turn pipeline with the forwarder
running beside it. Before the incident opens a resident fills the form (report, 跳过, 不留, 确认); after,
they are told what is known and press the join button. Measured: how long after the report that crossed
the threshold the staff chat's alert was sent, how many alerts went, the turns' p50/p99 per kind, and
that every resident ended on the one case.

    .venv/bin/python -m bench.incident_bench                       # embedded (SQLite + in-process Redis)
    .venv/bin/python -m bench.incident_bench --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_incident_bench --redis-url redis://127.0.0.1:6379/11

With ``--database-url`` the database is dropped and created afresh, and the Redis database flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.models import Appeal, AppealSupporter, Incident
from bot.db.repository.admin import AdminRepository
from bot.handoff.notices import STAFF_CHAT as STAFF_PURPOSE
from bot.message import ChatType, IncomingMessage, Platform, Reply
from bot.roles import ensure_community
from bot.runtime import Runtime
from bot.settings import Settings
from integrations.backend.forwarder import Forwarder

STAFF_CHAT = "bench-staff"


@dataclass
class Recorder:
    platform: Platform = Platform.REST
    alerts: list[float] = field(default_factory=list)
    sent: int = 0

    async def send(self, reply: Reply) -> None:
        self.sent += 1
        if reply.chat_id == STAFF_CHAT and "片区预警" in reply.text:
            self.alerts.append(time.perf_counter())


def _message(text: str, who: str, chat: str, *, group: bool) -> IncomingMessage:
    return IncomingMessage(
        platform=Platform.REST,
        chat_id=chat if group else who,
        chat_type=ChatType.GROUP if group else ChatType.PRIVATE,
        sender_id=who,
        sender_name=f"居民{who}",
        text=text,
        chat_title=f"{chat}业主群" if group else None,
        mentions_bot=group,
    )


async def _fresh(database_url: str, redis_url: str) -> None:
    from bot.state import StateStore

    name = database_url.rsplit("/", 1)[1]
    admin = create_async_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    store = StateStore.from_url(redis_url)
    await store.redis.flushdb()
    await store.close()


async def run(args: argparse.Namespace) -> None:
    overrides: dict[str, object] = {"data_dir": Path(tempfile.mkdtemp(prefix="incident-bench-"))}
    if args.database_url:
        await _fresh(args.database_url, args.redis_url)
        overrides.update(database_url=args.database_url, redis_url=args.redis_url)
    settings = Settings(**overrides, forwarder_idle_s=0.05)  # type: ignore[arg-type]
    rt = await Runtime.start(settings)
    recorder = Recorder()
    rt.outbound.register(recorder)
    async with rt.db.unit_of_work() as uow:
        await ensure_community(uow.session, settings.default_community, "幸福里社区")
        await uow.commit()
    # The staff group as `huiyin admin bind-chat --staff` makes it: a group the bot has met.
    await rt.dispatcher.handle(_message("@回音 你好", "bench-clerk", STAFF_CHAT, group=True))
    async with rt.db.unit_of_work() as uow:
        chat = await AdminRepository(uow.session).chat("rest", STAFF_CHAT)
        assert chat is not None
        chat.purpose = STAFF_PURPOSE
        await uow.commit()
    stop = asyncio.Event()
    forwarder = asyncio.create_task(Forwarder(rt.db, settings, outbound=rt.outbound).run(stop))
    latencies: dict[str, list[float]] = defaultdict(list)
    threshold_at: list[float] = []
    handle = rt.dispatcher.handle

    async def turn(kind: str, message: IncomingMessage) -> list[Reply]:
        start = time.perf_counter()
        replies = await handle(message)
        latencies[kind].append(time.perf_counter() - start)
        return replies

    async def resident(i: int) -> None:
        who, chat, building = f"b{i}", f"g{i % args.groups}", str(i % 30 + 1)
        first = await turn(
            "report", _message(f"@回音 {building}栋停水了，家里一点水都没有", who, chat, group=True)
        )
        join = next((b.payload for r in first for b in r.buttons if b.payload.startswith("/incident")), None)
        if join is not None:
            await turn("join", _message(join, who, chat, group=True))
            return
        await turn("form", _message("@回音 跳过", who, chat, group=True))
        await turn("form", _message("不留", who, chat, group=False))
        confirmed = await turn("confirm", _message("/confirm", who, chat, group=False))
        if any("合并为一件" in r.text for r in confirmed) and not threshold_at:
            threshold_at.append(time.perf_counter())

    gap = args.seconds / args.reports
    started = time.perf_counter()
    tasks = []
    for i in range(args.reports):
        delay = started + i * gap - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(resident(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # the forwarder's last round
    stop.set()
    await forwarder

    async with rt.db.unit_of_work() as uow:
        incidents = int(await uow.session.scalar(select(func.count()).select_from(Incident)) or 0)
        open_cases = int(
            await uow.session.scalar(select(func.count()).where(Appeal.status == "submitted")) or 0
        )
        supporters = int(await uow.session.scalar(select(func.count()).select_from(AppealSupporter)) or 0)
    await rt.close()

    print(
        f"{args.reports} residents in {args.groups} groups over {elapsed:.1f} s ({settings.effective_database_url.split(':')[0]})"
    )
    print(f"incidents: {incidents}, open cases: {open_cases}, supporters of the case: {supporters}")
    if threshold_at and recorder.alerts:
        print(
            f"alerts to the staff chat: {len(recorder.alerts)}; the first {recorder.alerts[0] - threshold_at[0]:.2f} s after the threshold"
        )
    else:
        print(f"alerts: {len(recorder.alerts)}, threshold crossed: {bool(threshold_at)}")
    for kind, values in sorted(latencies.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(
            f"  {kind:8} n={len(values):5}  p50 {statistics.median(values) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
