"""The soak benchmark's own logic, in-process: its workload, how it reads answers, its report."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Container
from typing import Any

from aiohttp import web

from bench.services import DIALOG_STEPS, DIALOGS_PER_RESIDENT, client_session
from bench.soak import (
    Message,
    Phase,
    Report,
    Targets,
    Workload,
    check_reply,
    drive,
    own_redis_db,
    rss_marks,
    slope_mb_per_min,
)


def test_workload_mixes_chatter_and_dialogs_and_hands_over_to_new_residents() -> None:
    w = Workload(dialog_percent=20, residents=4)
    warmup = w.warmup()
    # Resident r ends the warm-up at step r % 4 of their second dialog.
    assert w.step == [DIALOG_STEPS + r % DIALOG_STEPS for r in range(4)]
    assert [m.kind for m in warmup[DIALOG_STEPS - 1]] == ["confirm"] * 4

    messages = [w.next() for _ in range(1000)]
    kinds = Counter(m.kind for m in messages)
    assert kinds["chatter"] == 800
    assert kinds["turn"] + kinds["confirm"] == 200
    assert all(m.kind == "chatter" for m in messages[:4])  # dialog turns are spread, not bunched
    assert messages[4].who == 0
    # 4 slots × 8 dialogs: the first residents retire, the slots pass to new residents from step 0.
    assert w.residents > 4
    assert all(n <= DIALOGS_PER_RESIDENT * DIALOG_STEPS for n in w.step)
    ids = [m.body["metadata"]["message_id"] for m in messages + [m for wave in warmup for m in wave]]
    assert len(ids) == len(set(ids))
    first_of_new = next(m for m in messages if m.who == 4)
    assert first_of_new.body["message"].startswith("@回音 2栋1单元")

    # A resident still waiting for an answer is skipped, and goes on from the same step next time.
    w = Workload(dialog_percent=100, residents=2)
    assert w.next(waiting={0}).kind == "skipped" and w.step == [0, 0]
    assert w.next(waiting={0}).body["metadata"]["message_id"] == "d1-1"
    assert w.next().body["metadata"]["message_id"] == "d0-1"
    # A resident whose turn went wrong hands the slot over to a new resident, from a new report.
    w.abandoned.add(1)
    assert w.next().body["metadata"]["message_id"] == "d2-1"


def test_check_reply() -> None:
    filed = [{"text": "已提交，诉求编号 HY-20261203-10001。\n初步判断……"}]
    assert check_reply("confirm", 200, json.dumps(filed).encode()) == (None, "HY-20261203-10001")
    assert check_reply("confirm", 200, json.dumps([{"text": "抱歉，我没太明白。"}]).encode()) == (
        "not filed",
        None,
    )
    assert check_reply("chatter", 200, b"[]") == (None, None)
    assert check_reply("chatter", 200, b'[{"text": "hi"}]') == ("answered", None)
    assert check_reply("turn", 200, b"[]") == ("unanswered", None)
    assert check_reply("turn", 503, b"{}") == ("HTTP 503", None)


async def test_drive_against_a_canned_server() -> None:
    seen: list[dict[str, Any]] = []

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        if body["sender"].startswith("chat-"):
            return web.json_response([])
        if body["message"] == "/confirm":
            n = len(seen)
            return web.json_response([{"text": f"已提交，诉求编号 HY-20261203-{n:04d}。"}])
        if body["message"] == "不留" and body["sender"] == "res-0":
            return web.json_response({"detail": "boom"}, status=500)
        return web.json_response([{"text": "好的"}])

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        w, phase = Workload(dialog_percent=50, residents=4), Phase()
        async with client_session() as client:
            await drive(client, f"http://127.0.0.1:{port}", w.next, 50, 40, phase, on_error=w.abandoned.add)
    finally:
        await runner.cleanup()

    assert phase.skipped == 0  # a resident's turns are 160 ms apart, the canned server answers at once
    assert phase.sent == len(seen) == 40 and phase.responses == 40
    assert len(phase.latencies["chatter"]) == 20
    # 20 dialog turns in 4 slots, 5 each: three residents confirm; resident 0's "no phone" went wrong,
    # so they were left (their confirmation would only fail too) and resident 4 took the slot over.
    assert len(set(phase.filed)) == len(phase.filed) == 3
    assert w.abandoned == {0} and w.residents == 5
    assert phase.errors == Counter({"dialog turn: HTTP 500": 1})
    assert phase.max_lag_ms >= 0


async def test_drive_sends_to_several_servers_round_robin() -> None:
    seen: list[tuple[int, str]] = []
    runners = []

    def server(n: int) -> web.Application:
        async def webhook(request: web.Request) -> web.Response:
            seen.append((n, (await request.json())["metadata"]["message_id"]))
            return web.json_response([{"text": "好的"}])

        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", webhook)
        return app

    bases = []
    try:
        for n in range(2):
            runner = web.AppRunner(server(n))
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            bases.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
        w, phase = Workload(dialog_percent=50, residents=4), Phase()
        generated: list[str] = []

        def next_message(waiting: Container[int]) -> Message:
            message = w.next(waiting)
            generated.append(message.body["metadata"]["message_id"])
            return message

        async with client_session() as client:
            await drive(client, bases, next_message, 50, 10, phase)
    finally:
        for runner in runners:
            await runner.cleanup()

    assert phase.sent == phase.responses == 10 and phase.skipped == 0
    # Message i to server i % 2, whatever its kind: one resident's dialog moves between the servers.
    server_of = dict((message_id, n) for n, message_id in seen)
    assert [server_of[m] for m in generated] == [i % 2 for i in range(10)]


def _report(phase: Phase, appeals: dict[str, int], rss: list[tuple[float, float]]) -> Report:
    return Report(
        command="python -m bench.soak --duration 2 --rate 10",
        rate=10,
        duration=2,
        dialog_percent=20,
        warmup=Phase(),
        measured=phase,
        rss_ready=100.0,
        rss=rss_marks(rss, 1),
        rss_samples=rss,
        rss_every=1,
        peak_mb=max(r for _, r in rss),
        appeals=appeals,
        appeal_rows=sum(appeals.values()),
        residents=200,
        abandoned=0,
        server_cpu_s=0.1,
        own_cpu_s=0.01,
        load=(0.1, 0.2),
        late_ms=20,
    )


def test_report_meets_targets_and_names_each_miss() -> None:
    phase = Phase(sent=20, responses=20, started=0.0, last_answer=2.0)
    phase.latencies["chatter"].extend([1.0] * 16)
    phase.latencies["turn"].extend([5.0] * 3)
    phase.latencies["confirm"].append(9.0)
    phase.filed.append("HY-20261203-0001")
    flat = [(0.0, 120.0), (1.0, 120.5), (2.0, 121.0)]
    report = _report(phase, {"HY-20261203-0001": 1}, flat)
    assert report.misses(Targets()) == []
    text = "\n".join(report.summary(Targets()))
    assert "`python -m bench.soak --duration 2 --rate 10`" in text
    assert "all targets met" in text and "0 lost, 0 duplicated" in text
    assert abs(slope_mb_per_min(flat) - 30.0) < 1e-9

    phase.error("confirm", "HTTP 500", "Internal Server Error")
    phase.filed.append("HY-20261203-0002")  # answered as filed, not in the database
    grown = [(0.0, 120.0), (1.0, 140.0), (2.0, 160.0)]
    missed = _report(phase, {"HY-20261203-0001": 1}, grown).misses(Targets(p99_ms=5))
    assert missed == [
        "1 errors",
        "1 appeals lost, 0 duplicated",
        "RSS grew +40.0 MB",
        "confirmation p99 9.0 ms",
    ]
    assert rss_marks([(float(t), 1.0) for t in range(10)], 4) == [(0, 1), (4, 1), (8, 1), (9, 1)]


def test_the_soak_flushes_only_a_redis_database_of_its_own() -> None:
    assert own_redis_db("redis://127.0.0.1:6379/12")
    for url in ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/15"):
        assert not own_redis_db(url)
    assert not own_redis_db("redis+cluster://127.0.0.1:7000")


async def test_every_dialog_of_a_benchmark_resident_files_a_new_appeal(runtime: Any) -> None:
    """The benchmarks count a confirmation answered with anything but a new appeal as a miss: none of one
    resident's reports (all at one place) may be similar enough to an earlier one to meet the duplicate
    check, which answers with an offer instead of filing."""
    from bench.services import appeal_request
    from bot.message import ChatType, IncomingMessage, Platform

    filed = []
    for step in range(DIALOGS_PER_RESIDENT * DIALOG_STEPS):
        body = appeal_request(7, step)
        meta = body["metadata"]
        replies = await runtime.dispatcher.handle(
            IncomingMessage(
                platform=Platform.REST,
                chat_id=meta["chat_id"],
                chat_type=ChatType(meta["chat_type"]),
                sender_id=body["sender"],
                sender_name=meta.get("user_name", ""),
                text=body["message"],
                mentions_bot=body["message"].startswith("@"),
                message_id=meta["message_id"],
            )
        )
        if step % DIALOG_STEPS == DIALOG_STEPS - 1:
            filed.append(any("已提交，诉求编号" in r.text for r in replies))
    assert filed == [True] * DIALOGS_PER_RESIDENT
