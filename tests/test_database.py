"""The unit of work's buffered writes (transcript lines, conversation touches), filing an appeal, and
the connection pool.

A turn's lines and touch are written at commit, alone (one statement outside a transaction on
PostgreSQL) when the unit of work did nothing else, inside its transaction when it did. Either way they
are written exactly once, and never when the unit of work is not committed. An appeal is filed with its
status event and outbox row (on PostgreSQL in one statement), once per dialog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text

from bot.db.models import Appeal, AppealEvent, Counter, OutboxEntry, Person, TranscriptMessage, utcnow
from bot.db.repository import ConversationRef, NewAppeal
from bot.message import IncomingMessage
from bot.runtime import Runtime

Msg = Callable[..., IncomingMessage]


async def _conversation_id(runtime: Runtime, private_msg: Msg) -> int:
    """A conversation that exists (one turn of the resident's private chat has created it)."""
    await runtime.dispatcher.handle(private_msg("你好"))
    async with runtime.db.unit_of_work() as uow:
        found = await uow.session.scalar(select(TranscriptMessage.conversation_id).limit(1))
    assert found is not None
    return int(found)


async def _lines(runtime: Runtime, conversation_id: int) -> list[str]:
    async with runtime.db.unit_of_work() as uow:
        return [m.text for m in await uow.repo.conversations.transcript(conversation_id)]


async def test_lines_and_touch_alone_are_written_at_commit(runtime: Runtime, private_msg: Msg) -> None:
    conv = await _conversation_id(runtime, private_msg)
    before = await _lines(runtime, conv)
    async with runtime.db.unit_of_work() as uow:
        await uow.repo.conversations.add_transcript(
            conv, direction="in", author="resident", text="第一行", intent=None
        )
        await uow.repo.conversations.add_transcript(
            conv, direction="out", author="bot", text="第二行", payload={"buttons": ["/confirm"]}
        )
        await uow.repo.conversations.touch_conversation(
            conv, {"dialog": "appeal", "slots": {"description": "漏水"}}
        )
        await uow.repo.conversations.touch_conversation(
            conv, {"dialog": "appeal", "slots": {"description": "楼顶漏水"}}
        )
        await uow.commit()
    assert await _lines(runtime, conv) == [*before, "第一行", "第二行"]
    async with runtime.db.unit_of_work() as uow:
        # The later touch of the same conversation wins.
        assert await uow.repo.conversations.dialog_state(conv) == {
            "dialog": "appeal",
            "slots": {"description": "楼顶漏水"},
        }
        line = (await uow.repo.conversations.transcript(conv))[-1]
        assert line.payload == {"buttons": ["/confirm"]} and line.created_at.tzinfo is not None
    async with runtime.db.unit_of_work() as uow:
        await uow.repo.conversations.touch_conversation(
            conv, None
        )  # no dialog: SQL NULL, as the column's type writes it
        await uow.commit()
    async with runtime.db.unit_of_work() as uow:
        assert await uow.repo.conversations.dialog_state(conv) is None
        assert await uow.session.scalar(
            text(f"SELECT dialog_state IS NULL FROM conversation WHERE id = {conv}")
        )


async def test_a_statement_in_between_writes_the_lines_first_and_once(
    runtime: Runtime, private_msg: Msg
) -> None:
    conv = await _conversation_id(runtime, private_msg)
    before = await _lines(runtime, conv)
    async with runtime.db.unit_of_work() as uow:
        await uow.repo.conversations.add_transcript(conv, direction="in", author="resident", text="先写的")
        # A query sees the line (it is written just before the query, in the transaction) ...
        assert [m.text for m in await uow.repo.conversations.transcript(conv)] == [*before, "先写的"]
        await uow.repo.conversations.add_transcript(conv, direction="out", author="bot", text="后写的")
        await uow.repo.conversations.touch_conversation(conv, {"dialog": "appeal"})
        await uow.commit()
    # ... and every line is written once.
    assert await _lines(runtime, conv) == [*before, "先写的", "后写的"]


async def test_lines_go_with_the_orm_changes_of_their_unit_of_work(
    runtime: Runtime, private_msg: Msg
) -> None:
    """With a change in the identity map the lines are not written alone: they commit with it or not."""
    conv = await _conversation_id(runtime, private_msg)
    before = await _lines(runtime, conv)
    async with runtime.db.unit_of_work() as uow:
        person = await uow.session.scalar(select(Person).limit(1))
        assert person is not None
        person.phone = "13800000000"
        await uow.repo.conversations.add_transcript(conv, direction="in", author="resident", text="留个电话")
        await uow.commit()
    async with runtime.db.unit_of_work() as uow:
        assert await uow.session.scalar(select(Person.phone).where(Person.id == person.id)) == "13800000000"
    assert await _lines(runtime, conv) == [*before, "留个电话"]


async def test_nothing_is_written_without_a_commit(runtime: Runtime, private_msg: Msg) -> None:
    conv = await _conversation_id(runtime, private_msg)
    before = await _lines(runtime, conv)
    async with runtime.db.unit_of_work() as uow:
        await uow.repo.conversations.add_transcript(conv, direction="in", author="resident", text="不会写入")
        await uow.repo.conversations.touch_conversation(conv, {"dialog": "appeal"})
    async with runtime.db.unit_of_work() as uow:
        await uow.repo.conversations.add_transcript(
            conv, direction="in", author="resident", text="也不会写入"
        )
        await uow.repo.conversations.transcript(conv)  # written in the transaction ...
        await uow.rollback()  # ... which is rolled back
        await uow.commit()  # a commit after the rollback has nothing left to write
    assert await _lines(runtime, conv) == before
    async with runtime.db.unit_of_work() as uow:
        assert await uow.repo.conversations.dialog_state(conv) is None


async def _resident(runtime: Runtime, who: str = "filer") -> ConversationRef:
    async with runtime.db.unit_of_work() as uow:
        person = await uow.repo.people.person_for("rest", who, "赵先生")
        community = await uow.repo.conversations.community(runtime.settings.default_community)
        chat = await uow.repo.conversations.chat("rest", who, "private", "", community.id, False)
        conv = await uow.repo.conversations.conversation(f"rest:{who}:{who}", "rest", chat, person)
        await uow.commit()
        return ConversationRef(conv.id, person.id, community.id, community.code, chat.id)


async def _file(
    runtime: Runtime, ref: ConversationRef, draft_key: str, day: str = "20261123", *, to_city: bool = True
) -> tuple[str, bool]:
    new = NewAppeal(
        draft_key=draft_key,
        description="5栋2单元电梯门关不上",
        origin_platform="rest",
        origin_chat="filer",
        origin_chat_type="private",
        building="5",
        unit="2",
        contact_phone="13900000000",
    )
    async with runtime.db.unit_of_work() as uow:
        filed, created = await uow.repo.appeals.create_appeal(
            new, ref, public_id_prefix="HY", day=day, first_response_due_at=utcnow(), to_city=to_city
        )
        await uow.commit()
    return filed.public_id, created


async def test_an_appeal_is_filed_once_per_dialog_with_its_event_and_outbox_row(runtime: Runtime) -> None:
    ref = await _resident(runtime)
    first, created = await _file(runtime, ref, "draft-1")
    again, created_again = await _file(runtime, ref, "draft-1")  # the same dialog confirmed again
    assert created and not created_again and again == first == "HY-20261123-0001"
    second, _ = await _file(runtime, ref, "draft-2")
    assert second == "HY-20261123-0002", "the day's numbering goes on without a gap"
    async with runtime.db.unit_of_work() as uow:
        appeal = await uow.repo.appeals.appeal_by_public_id(first)
        assert appeal is not None
        events = (
            await uow.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id))
        ).all()
        outbox = (
            await uow.session.scalars(select(OutboxEntry).where(OutboxEntry.appeal_id == appeal.id))
        ).all()
        assert await uow.session.scalar(select(func.count()).select_from(Appeal)) == 2
    assert (appeal.reporter_id, appeal.conversation_id, appeal.building, appeal.unit) == (
        ref.person_id,
        ref.conversation_id,
        "5",
        "2",
    )
    assert (appeal.status, appeal.supporters, appeal.location, appeal.photos, appeal.backend_state) == (
        "submitted",
        1,
        {},
        [],
        {},
    )
    assert appeal.contact_phone == "13900000000" and appeal.created_at.tzinfo is not None
    [event] = events
    assert (event.kind, event.status_to, event.actor, event.note) == (
        "status",
        "submitted",
        f"resident:{ref.person_id}",
        "居民通过回音提交",
    )
    [entry] = outbox
    assert (entry.action, entry.idempotency_key, entry.payload, entry.attempts, entry.delivered_at) == (
        "create",
        f"{runtime.db.instance_id}:{first}:create",
        {"public_id": first},
        0,
        None,
    )
    kept, _ = await _file(runtime, ref, "draft-3", to_city=False)
    async with runtime.db.unit_of_work() as uow:
        local = await uow.repo.appeals.appeal_by_public_id(kept)
        assert local is not None and local.destination == "community"
        rows = await uow.session.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.appeal_id == local.id)
        )
    assert rows == 0, "an appeal the community handles itself is queued for no backend"


async def test_the_ten_thousandth_appeal_of_a_day_keeps_all_its_digits(runtime: Runtime) -> None:
    ref = await _resident(runtime)
    async with runtime.db.unit_of_work() as uow:
        uow.session.add(Counter(name="appeal:20261124", value=9999))
        await uow.commit()
    public_id, _ = await _file(runtime, ref, "draft-busy-day", day="20261124")
    assert public_id == "HY-20261124-10000"


@pytest.mark.real_services
async def test_a_connection_the_server_closed_is_replaced_at_checkout(
    runtime: Runtime, private_msg: Msg
) -> None:
    """PostgreSQL restarted or an administrator terminated the backends: the pooled connections are
    closed sockets. The next turns get fresh connections instead of failing (without a ping per
    checkout, which costs more round trips than a turn)."""
    await runtime.dispatcher.handle(private_msg("地下车库积水了"))
    async with runtime.db.engine.connect() as admin, runtime.db.engine.connect() as other:
        await other.execute(text("SELECT 1"))
        await other.commit()  # idle, as a pooled connection is
        terminated = await admin.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert terminated, "the pool should have held another connection"
    # Back in the pool: `other` (terminated), then `admin` (alive); the pool hands out the oldest first.
    await asyncio.sleep(0.1)  # the event loop reads the closed socket, as it would while the pool idles
    r = await runtime.dispatcher.handle(private_msg("跳过"))
    assert any("手机号" in reply.text for reply in r)
    async with runtime.db.unit_of_work() as uow:
        assert (await uow.session.scalar(select(func.count()).select_from(TranscriptMessage)) or 0) >= 4


async def test_a_database_error_does_not_carry_what_residents_wrote(runtime: Runtime) -> None:
    """Database errors are logged (and shown in tracebacks) with their statement; the values bound to it
    are residents' messages and phone numbers, and must not reach the logs."""
    from sqlalchemy.exc import IntegrityError

    said = "我家电话13812345678，楼上漏水"
    with pytest.raises(IntegrityError) as failed:
        async with runtime.db.unit_of_work() as uow:
            await uow.session.execute(
                text(
                    "INSERT INTO transcript_message (conversation_id, direction, author, text, payload,"
                    " created_at) VALUES (:conversation, 'in', 'resident', :said, '{}', :at)"
                ),
                {"conversation": 987654, "said": said, "at": utcnow()},  # no such conversation
            )
            await uow.commit()
    logged = f"{failed.value!s} {failed.value!r}"
    assert "INSERT INTO transcript_message" in logged, "the statement still helps whoever reads the log"
    assert "13812345678" not in logged and said not in logged
