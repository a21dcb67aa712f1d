"""The retention period (bot/privacy/retention.py): personal data of finished appeals, old transcripts and
idle residents' phones is removed after HUIYIN_RETENTION_DAYS, on a clock the test moves."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bot.appeals.status import change_status, lock_appeal
from bot.db.models import (
    Appeal,
    AppealEvent,
    AppealStatus,
    Conversation,
    HandoffNote,
    Person,
    TranscriptMessage,
    utcnow,
)
from bot.privacy.retention import Retention
from bot.runtime import Runtime
from bot.settings import Settings
from integrations.backend.forwarder import Forwarder
from tests.conftest import group_message, private_message

APPEAL_ID = re.compile(r"HY-\d{8}-\d{4}")


async def file_with_contact(rt: Runtime, who: str, text: str = "3栋2单元1201厨房漏水") -> str:
    """A resident files ``text`` in private and leaves a phone number; returns the public id."""
    replies = []
    for step in (text, "跳过", "13812345678", "/confirm"):
        replies = await rt.dispatcher.handle(private_message(step, who=who, name="王阿姨"))
    found = next((m for r in replies if (m := APPEAL_ID.search(r.text))), None)
    assert found, [r.text for r in replies]
    return found.group(0)


async def finish(rt: Runtime, public_id: str, status: AppealStatus, note: str = "已处理") -> None:
    async with rt.db.unit_of_work() as uow:
        row = await uow.appeals.appeal_by_public_id(public_id)
        assert row is not None
        appeal = await lock_appeal(uow.session, row.id)
        assert appeal is not None
        words = rt.dispatcher.dialogs.responses
        if status is AppealStatus.CLOSED:
            await change_status(uow.session, appeal, AppealStatus.RESOLVED, note="", actor="bot", words=words)
        await change_status(uow.session, appeal, status, note=note, actor="bot", words=words)
        await uow.commit()


async def load(rt: Runtime, public_id: str) -> Appeal:
    async with rt.db.unit_of_work() as uow:
        appeal = await uow.appeals.appeal_by_public_id(public_id)
        assert appeal is not None
        return appeal


async def transcript_count(rt: Runtime, appeal: Appeal) -> int:
    async with rt.db.unit_of_work() as uow:
        return int(
            await uow.session.scalar(
                select(func.count())
                .select_from(TranscriptMessage)
                .where(TranscriptMessage.conversation_id == appeal.conversation_id)
            )
            or 0
        )


def retention(rt: Runtime) -> Retention:
    return Retention(rt.db, retention_days=rt.settings.retention_days, data_dir=rt.settings.data_dir)


async def test_a_closed_appeal_past_the_period_loses_its_personal_data_and_nothing_else_does(
    runtime: Runtime,
) -> None:
    rt = runtime
    old = await file_with_contact(rt, "old")
    recent = await file_with_contact(rt, "recent", "5栋1单元802楼道灯坏了")
    still_open = await file_with_contact(rt, "open", "7栋3单元1502电梯坏了")
    # A downloaded photo under the data folder, on the appeal that will be purged.
    photo = rt.settings.data_dir / "media" / "telegram" / "abc.jpg"
    photo.parent.mkdir(parents=True, exist_ok=True)
    photo.write_bytes(b"jpeg")
    outside = rt.settings.data_dir.parent / "not-ours.jpg"
    outside.write_bytes(b"jpeg")
    async with rt.db.unit_of_work() as uow:
        row = await uow.appeals.appeal_by_public_id(old)
        assert row is not None
        row.photos = [
            {"kind": "photo", "file_id": "f1", "url": photo.resolve().as_uri()},
            {"kind": "photo", "file_id": "f2", "url": outside.resolve().as_uri()},
        ]
        row.location = {"latitude": 31.2, "longitude": 121.5}
        await uow.commit()
    await finish(rt, old, AppealStatus.CLOSED, note="已联系3栋2单元1201住户（电话13812345678）更换水管")
    # Withdrawn (by the resident, bot/privacy) two days later: at +181 days it is 179 days finished.
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(
            Appeal.__table__.update()
            .where(Appeal.public_id == recent)
            .values(status=AppealStatus.WITHDRAWN.value, withdrawn_at=utcnow() + timedelta(days=2))
        )
        await uow.commit()

    before = await load(rt, old)
    assert before.contact_phone == "13812345678" and before.room == "1201"
    assert await transcript_count(rt, before) > 0

    now = utcnow() + timedelta(days=181)
    report = await retention(rt).run(now)
    assert report.appeals == 1
    assert report.photos_deleted == 1

    purged = await load(rt, old)
    assert purged.contact_phone is None
    assert purged.room is None and purged.unit is None
    assert purged.location == {} and purged.photos == []
    assert purged.personal_data_removed_at == now
    # Statistics stay.
    assert purged.status == AppealStatus.CLOSED.value
    assert purged.building == before.building and purged.category == before.category
    assert purged.created_at == before.created_at and purged.resolved_at == before.resolved_at
    assert "1201" not in purged.description
    async with rt.db.unit_of_work() as uow:
        notes = (
            await uow.session.execute(select(AppealEvent.note).where(AppealEvent.appeal_id == purged.id))
        ).scalars()
        joined = " ".join(notes)
    assert "更换水管" in joined, "the note stays"
    assert "1201" not in joined and "13812345678" not in joined, joined
    assert not photo.exists() and outside.exists()
    assert await transcript_count(rt, purged) == 0

    for kept_id in (recent, still_open):
        kept = await load(rt, kept_id)
        assert kept.contact_phone == "13812345678", kept_id
        assert kept.room is not None and kept.personal_data_removed_at is None
    # The conversation of the open appeal keeps its transcript; the withdrawn one's is quiet as long as
    # the closed one's and goes (a transcript's period runs from the conversation's last message).
    assert await transcript_count(rt, await load(rt, still_open)) > 0
    assert await transcript_count(rt, await load(rt, recent)) == 0

    # The same run again: nothing left to do, nothing changes.
    again = await retention(rt).run(now + timedelta(minutes=5))
    assert again.total == 0 and again.photos_deleted == 0
    assert (await load(rt, old)).personal_data_removed_at == now


async def test_at_179_days_nothing_is_removed(runtime: Runtime) -> None:
    rt = runtime
    public_id = await file_with_contact(rt, "wang")
    await finish(rt, public_id, AppealStatus.RESOLVED)
    report = await retention(rt).run(utcnow() + timedelta(days=179))
    assert report.total == 0
    appeal = await load(rt, public_id)
    assert appeal.contact_phone == "13812345678" and appeal.personal_data_removed_at is None
    assert await transcript_count(rt, appeal) > 0


async def test_an_idle_residents_saved_phone_goes_an_active_ones_stays(runtime: Runtime) -> None:
    rt = runtime
    idle = await file_with_contact(rt, "idle")
    active = await file_with_contact(rt, "active", "5栋1单元802楼道灯坏了")
    await finish(rt, idle, AppealStatus.RESOLVED)
    await finish(rt, active, AppealStatus.RESOLVED)
    later = utcnow() + timedelta(days=181)
    async with rt.db.unit_of_work() as uow:
        appeal = await uow.appeals.appeal_by_public_id(active)
        assert appeal is not None
        # The active resident wrote again recently (in the test's future): their phone stays.
        await uow.session.execute(
            Conversation.__table__.update()
            .where(Conversation.id == appeal.conversation_id)
            .values(last_message_at=later - timedelta(days=1))
        )
        await uow.commit()
    phones_before = await _phones(rt)
    assert set(phones_before.values()) == {"13812345678"}, phones_before

    report = await retention(rt).run(later)
    assert report.phones == 1
    phones = await _phones(rt)
    idle_person = (await load(rt, idle)).reporter_id
    active_person = (await load(rt, active)).reporter_id
    assert phones[idle_person] is None and phones[active_person] == "13812345678"
    async with rt.db.unit_of_work() as uow:
        person = await uow.session.get(Person, idle_person)
        assert person is not None and person.consent_at is None


async def _phones(rt: Runtime) -> dict[int, str | None]:
    async with rt.db.unit_of_work() as uow:
        rows = await uow.session.execute(select(Person.id, Person.phone))
        return {int(i): p for i, p in rows}


async def test_staff_notes_of_an_old_conversation_go(runtime: Runtime) -> None:
    rt = runtime
    public_id = await file_with_contact(rt, "wang")
    await finish(rt, public_id, AppealStatus.RESOLVED)
    appeal = await load(rt, public_id)
    async with rt.db.unit_of_work() as uow:
        assert appeal.conversation_id is not None
        uow.session.add(
            HandoffNote(
                conversation_id=appeal.conversation_id,
                author_id=appeal.reporter_id,
                text="居民电话13812345678",
            )
        )
        await uow.commit()
    report = await retention(rt).run(utcnow() + timedelta(days=181))
    assert report.notes == 1
    async with rt.db.unit_of_work() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(HandoffNote)) == 0


async def test_the_purge_is_batched_and_finishes_in_one_run(runtime: Runtime) -> None:
    rt = runtime
    ids = [await file_with_contact(rt, f"r{i}", f"{i + 1}栋1单元1201厨房漏水") for i in range(3)]
    for public_id in ids:
        await finish(rt, public_id, AppealStatus.REJECTED)
    small = Retention(rt.db, retention_days=180, data_dir=rt.settings.data_dir, batch=2)
    report = await small.run(utcnow() + timedelta(days=181))
    assert report.appeals == 3
    for public_id in ids:
        assert (await load(rt, public_id)).contact_phone is None


async def test_the_worker_runs_the_purge(runtime: Runtime) -> None:
    rt = runtime
    public_id = await file_with_contact(rt, "wang")
    await finish(rt, public_id, AppealStatus.CLOSED)
    forwarder = Forwarder(rt.db, rt.settings.model_copy(update={"forwarder": False}), kb=rt.kb)
    await forwarder.run_once(utcnow() + timedelta(days=181))
    assert (await load(rt, public_id)).personal_data_removed_at is not None
    await forwarder.backends.close()


def test_the_period_must_be_positive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(data_dir=tmp_path).retention_days == 180
    monkeypatch.setenv("HUIYIN_RETENTION_DAYS", "30")
    assert Settings(data_dir=tmp_path).retention_days == 30
    for bad in ("0", "-5"):
        monkeypatch.setenv("HUIYIN_RETENTION_DAYS", bad)
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path)


async def test_two_workers_purging_at_once_remove_each_appeal_once(runtime: Runtime) -> None:
    """On PostgreSQL each picks its batch FOR UPDATE SKIP LOCKED; on SQLite the writes take turns. Either
    way every appeal is purged once and neither run fails."""
    rt = runtime
    ids = [await file_with_contact(rt, f"r{i}", f"{i + 1}栋1单元1201厨房漏水") for i in range(4)]
    for public_id in ids:
        await finish(rt, public_id, AppealStatus.CLOSED)
    now = utcnow() + timedelta(days=181)
    workers = [Retention(rt.db, retention_days=180, data_dir=rt.settings.data_dir, batch=1) for _ in range(2)]
    reports = await asyncio.gather(*(w.run(now) for w in workers))
    assert sum(r.appeals for r in reports) == 4
    for public_id in ids:
        assert (await load(rt, public_id)).personal_data_removed_at == now


async def test_an_open_appeal_keeps_its_reporters_other_conversations(runtime: Runtime) -> None:
    """A report begun in the group goes on in private: while the appeal is open the group conversation's
    transcript (with its first words) stays too; once it is finished and the period passes, it goes."""
    rt = runtime
    await rt.dispatcher.handle(group_message("回音，物业的电话是多少", who="wang", mentions_bot=True))
    public_id = await file_with_contact(rt, "wang")
    group_conversation = await _conversation_id(rt, "rest:group-3:wang")

    await retention(rt).run(utcnow() + timedelta(days=181))
    assert await _transcript_of(rt, group_conversation) > 0

    await finish(rt, public_id, AppealStatus.RESOLVED)
    await retention(rt).run(utcnow() + timedelta(days=181))
    assert await _transcript_of(rt, group_conversation) == 0


async def _conversation_id(rt: Runtime, key: str) -> int:
    async with rt.db.unit_of_work() as uow:
        found = await uow.session.scalar(select(Conversation.id).where(Conversation.key == key))
    assert found is not None, key
    return int(found)


async def _transcript_of(rt: Runtime, conversation_id: int) -> int:
    async with rt.db.unit_of_work() as uow:
        count = await uow.session.scalar(
            select(func.count())
            .select_from(TranscriptMessage)
            .where(TranscriptMessage.conversation_id == conversation_id)
        )
    return int(count or 0)
