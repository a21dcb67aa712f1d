"""The resident's rating of a resolved appeal (满意 / 基本满意 / 不满意) and an optional comment.

Only the resident who reported the appeal rates it, once per resolution. The rating goes to the backend
through the outbox (action ``rating``), the comment as a separate update (action ``comment``). 不满意
reopens the case: its status becomes ``reopened``, the first-response clock starts again, the appeal is
put on the staff's list, and the relaying building leader and supporters are told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.appeals.notify import public_summary
from bot.appeals.status import change_status, flag, lock_appeal, queue_for_city, record_note
from bot.cases.notices import tell_handler, tell_staff
from bot.db.models import Appeal, AppealStatus, utcnow
from bot.db.repository.appeal_records import AppealRecords
from bot.dialog.slots import mask_personal
from bot.dialog.spec import Responses

SATISFIED, BASIC, UNSATISFIED = "satisfied", "basic", "unsatisfied"
RATING_VALUES = (SATISFIED, BASIC, UNSATISFIED)

# Whole-message words that answer "请您评价一下处理结果" (after normalization, punctuation removed).
RATING_WORDS = {
    "满意": SATISFIED,
    "很满意": SATISFIED,
    "非常满意": SATISFIED,
    "满意的": SATISFIED,
    "基本满意": BASIC,
    "还行": BASIC,
    "一般": BASIC,
    "还可以": BASIC,
    "不满意": UNSATISFIED,
    "不太满意": UNSATISFIED,
    "很不满意": UNSATISFIED,
    "非常不满意": UNSATISFIED,
    "没解决": UNSATISFIED,
    "没有解决": UNSATISFIED,
}
FLAG_UNSATISFIED = "unsatisfied"
_PLEASANTRIES = re.compile(r"谢谢|感谢|多谢|辛苦了|辛苦|你们|您|了|啊|吧|呀|哈")
_BY_LENGTH = sorted(RATING_WORDS, key=len, reverse=True)  # 不满意 before 满意


@dataclass(frozen=True, slots=True)
class Rated:
    """``outcome``: rated | reopened | not_reporter | already | not_resolved | unknown."""

    outcome: str
    appeal: Appeal | None = None


def awaiting(appeal: Appeal) -> bool:
    """Resolved, asked for a rating, and not rated since."""
    return (
        appeal.status == AppealStatus.RESOLVED.value
        and appeal.rating_requested_at is not None
        and (appeal.rated_at is None or appeal.rated_at < appeal.rating_requested_at)
    )


_NOT_A_RATING_AFTER = ("吗", "度", "么", "不")  # "满意吗", "满意度调查", "满意不满意"


def rating_in(word: str) -> tuple[str, bool] | None:
    """The rating a message (normalized, without punctuation: :func:`bot.dialog.slots.bare`) starts
    with, and whether more words follow it ("不满意还在滴水"); None when it starts with none."""
    for said in _BY_LENGTH:
        if word.startswith(said):
            rest = word[len(said) :]
            if rest.startswith(_NOT_A_RATING_AFTER):
                return None
            rest = _PLEASANTRIES.sub("", rest)
            return RATING_WORDS[said], sum(1 for ch in rest if "\u4e00" <= ch <= "\u9fff") >= 2
    return None


async def awaiting_rating(session: AsyncSession, person_id: int) -> Appeal | None:
    """The reporter's most recently resolved appeal still waiting for their rating."""
    return await AppealRecords(session).awaiting_rating(person_id)


async def rate(
    session: AsyncSession,
    appeal_id: int,
    person_id: int,
    rating: str,
    *,
    words: Responses,
    first_response_hours: int,
) -> Rated:
    """Record ``person_id``'s ``rating`` of appeal ``appeal_id``, queue it for the backend, and reopen
    the case on ``unsatisfied``. The caller commits."""
    if rating not in RATING_VALUES:
        raise ValueError(f"unknown rating {rating!r}")
    appeal = await lock_appeal(session, appeal_id)
    if appeal is None:
        return Rated("unknown")
    if appeal.reporter_id != person_id:
        return Rated("not_reporter", appeal)
    if not awaiting(appeal):
        return Rated("already" if appeal.rated_at is not None else "not_resolved", appeal)
    now = utcnow()
    appeal.rating, appeal.rated_at = rating, now
    label = words.get(f"rating.labels.{rating}")
    reopen = rating == UNSATISFIED
    event = record_note(
        session,
        appeal,
        kind="rating",
        note=label,
        actor=f"resident:{person_id}",
        payload={"rating": rating},
    )
    await session.flush()
    text = words.get("rating.backend_reopen") if reopen else words.get("rating.backend_text", label=label)
    queue_for_city(  # the city's backend hears the rating of the cases it handled
        session,
        appeal,
        "rating",
        f"{appeal.public_id}:rating:{event.id}",
        {"kind": "rating", "rating": rating, "reopen": reopen, "text": text, "case_open": reopen},
    )
    if not reopen:
        return Rated("rated", appeal)
    reopened = await change_status(
        session,
        appeal,
        AppealStatus.REOPENED,
        note="居民评价不满意，重新办理",
        actor=f"resident:{person_id}",
        words=words,
        notify_except={person_id},  # the resident is answered in the conversation itself
    )
    # A reopened case is a new request for a response: the SLA starts again, and staff look at it.
    appeal.first_response_due_at = now + timedelta(hours=first_response_hours)
    appeal.first_responded_at = None
    appeal.overdue_at = None
    appeal.response_reminded_at = None
    if appeal.resolution_due_at is not None:  # the same time to resolve it again as at first
        appeal.resolution_due_at = now + (appeal.resolution_due_at - appeal.created_at)
    appeal.resolution_reminded_at = appeal.resolution_overdue_at = None
    appeal.resolved_at = None
    if reopened is not None:  # the handler who finished it, and the community's staff, hear it is back
        back = words.get("case.handler_reopened", public_id=appeal.public_id, summary=public_summary(appeal))
        await tell_handler(session, appeal, appeal.handler_id, back, occasion=f"reopened:{reopened.id}")
        await tell_staff(session, appeal, back, occasion=f"reopened:{reopened.id}")
    if appeal.backend_id is not None:
        appeal.next_poll_at = now
    flag(session, appeal, FLAG_UNSATISFIED, "居民对处理结果不满意，已重新打开")
    return Rated("reopened", appeal)


async def comment(
    session: AsyncSession, appeal_id: int, person_id: int, text: str, *, words: Responses
) -> Appeal | None:
    """Record the resident's comment on the result and queue it for the backend."""
    appeal = await lock_appeal(session, appeal_id)
    if appeal is None or appeal.reporter_id != person_id:
        return None
    text = text.strip()[:1000]
    event = record_note(session, appeal, kind="comment", note=text, actor=f"resident:{person_id}")
    await session.flush()
    await tell_handler(  # the resident was told their words reach whoever handled the case
        session,
        appeal,
        appeal.handler_id,
        words.get("case.handler_comment", public_id=appeal.public_id, comment=mask_personal(text)[:300]),
        occasion=f"comment:{event.id}",
    )
    queue_for_city(
        session,
        appeal,
        "comment",
        f"{appeal.public_id}:comment:{event.id}",
        {
            "kind": "comment",
            "comment": text,
            "text": words.get("rating.backend_comment", comment=text),
            "case_open": appeal.status != AppealStatus.RESOLVED.value,
        },
    )
    return appeal
