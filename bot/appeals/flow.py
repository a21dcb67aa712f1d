"""What bot/appeals adds to a conversation turn. The dispatcher hands over in three places:

- :meth:`FollowUp.intercept`, before the dialog engine: a rating (the ``/rate`` button, or "不满意"
  when the resident has a resolved appeal waiting for a rating), the optional comment after a rating,
  and the answer to a duplicate offer ("加入支持" / ``/support``);
- :meth:`FollowUp.offer_duplicate`, when an appeal is confirmed: offer to join an open appeal at the
  same place instead of filing a second case (answering "仍然单独提交" sends ``/confirm`` again, which
  then files the appeal);
- :meth:`FollowUp.progress_note`, for "我的诉求进度": the note of the latest status change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bot.appeals import duplicates, rating
from bot.appeals.notify import summary_of
from bot.appeals.status import latest_status_note
from bot.db.models import Appeal, AppealStatus
from bot.db.repository import ConversationRef, Repository
from bot.dialog.engine import Prompt
from bot.dialog.slots import bare, describe_place
from bot.dialog.spec import Responses
from bot.message import Button, IncomingMessage
from bot.nlu.base import Intent, Understanding
from bot.settings import Settings
from bot.state import ConversationKey, Keys, StateStore

COMMENT_WINDOW_S = 1800  # how long after rating the next message is taken as the optional comment
_RATE = re.compile(r"/rate\s+(\S+)\s+(satisfied|basic|unsatisfied)")
_JOIN = re.compile(r"/support\s+(\S+)")
_LEADING_MENTIONS = re.compile(r"^(?:@\S+[\s\u2005]*)+")
JOIN_WORDS = frozenset({"加入", "加入支持", "支持", "加入这条", "加入这条诉求", "是同一个", "同一个问题"})
SKIP_WORDS = frozenset({"跳过", "不用", "不用了", "没有", "没了", "没有了", "算了", "不说了", "skip"})


@dataclass(slots=True)
class Handled:
    """The turn's answer, and the resident's dialog state after it."""

    prompts: list[Prompt] = field(default_factory=list)
    state: dict[str, Any] | None = None


class FollowUp:
    def __init__(
        self, *, settings: Settings, store: StateStore, words: Responses, bot_names: tuple[str, ...]
    ) -> None:
        self.settings = settings
        self.store = store
        self.words = words
        self._tz = ZoneInfo(settings.timezone)
        names = sorted({n.lower() for n in bot_names if n}, key=len, reverse=True)
        self._name = re.compile(
            r"^(?:" + "|".join(re.escape(n) for n in names) + r")[\s,，:：、]*", re.IGNORECASE
        )

    def _text(self, message: IncomingMessage) -> str:
        """The message without the @-mentions and the bot's name that addressed it in a group."""
        text = _LEADING_MENTIONS.sub("", message.text.strip())
        return self._name.sub("", text).strip()

    @staticmethod
    def comment_key(key: ConversationKey) -> str:
        """The Redis key that says the resident was asked for a comment on their rating (and on which
        appeal). The dispatcher learns whether it exists as it opens the turn."""
        return Keys.rating_comment(key)

    # --- before the dialog engine ----------------------------------------------------------------------
    async def intercept(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        u: Understanding,
        state: dict[str, Any] | None,
        *,
        comment_pending: bool = True,
    ) -> Handled | None:
        """Handle the message here when it is a rating, a comment or a duplicate answer; else None.

        ``comment_pending=False`` is the caller's word that :meth:`comment_key` does not exist."""
        text = self._text(message)
        found = _RATE.fullmatch(text)
        if found:
            return await self._rate(repo, ref, message, found.group(1), found.group(2), state)
        meta = (state or {}).get("meta") or {}
        if meta.get("duplicate_of"):
            joined = _JOIN.fullmatch(text)
            if joined or bare(text) in JOIN_WORDS:
                public_id = joined.group(1) if joined else str(meta["duplicate_of"])
                return await self._join(repo, ref, message, public_id, state)
            return None
        if (state is not None and state.get("dialog")) or u.intent.name is Intent.EMERGENCY:
            return None
        word = bare(text)
        if word in rating.RATING_WORDS:
            appeal = await rating.awaiting_rating(repo.session, ref.person_id)
            if appeal is not None:
                return await self._rate(
                    repo, ref, message, appeal.public_id, rating.RATING_WORDS[word], state
                )
        if not comment_pending:
            return None
        key = self.comment_key(ConversationKey.of(message))
        pending = await self.store.redis.get(key)
        if pending is None or text.startswith("/"):
            return None
        await self.store.redis.delete(key)
        if word in SKIP_WORDS:
            return Handled([Prompt(self.words.get("rating.comment_skipped"))], state)
        found_appeal = await repo.appeal_by_public_id(str(pending))
        if found_appeal is None:
            return None
        await rating.comment(repo.session, found_appeal.id, ref.person_id, text, words=self.words)
        return Handled([Prompt(self.words.get("rating.comment_thanks"))], state)

    async def _rate(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        public_id: str,
        value: str,
        state: dict[str, Any] | None,
    ) -> Handled:
        appeal = await repo.appeal_by_public_id(public_id)
        if appeal is None:
            return Handled([Prompt(self.words.get("rating.unknown", public_id=public_id))], state)
        result = await rating.rate(
            repo.session,
            appeal.id,
            ref.person_id,
            value,
            words=self.words,
            first_response_hours=self.settings.first_response_hours,
        )
        w = self.words
        if result.outcome == "not_reporter":
            return Handled([Prompt(w.get("rating.not_reporter"))], state)
        if result.outcome == "already":
            label = w.get(f"rating.labels.{appeal.rating}") if appeal.rating else ""
            return Handled([Prompt(w.get("rating.already", rating=label))], state)
        if result.outcome in {"not_resolved", "unknown"}:
            return Handled([Prompt(w.get(f"rating.{result.outcome}", public_id=public_id))], state)
        if result.outcome == "reopened":
            first = w.get(
                "rating.reopened", public_id=public_id, sla_hours=self.settings.first_response_hours
            )
        else:
            first = w.get(f"rating.thanks_{value}")
        ask = (
            w.get("rating.ask_comment_group", bot_name=self.settings.bot_name)
            if message.is_group
            else w.get("rating.ask_comment")
        )
        await self.store.redis.set(
            self.comment_key(ConversationKey.of(message)), public_id, ex=COMMENT_WINDOW_S
        )
        return Handled([Prompt(first), Prompt(ask)], state)

    async def _join(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        public_id: str,
        state: dict[str, Any] | None,
    ) -> Handled:
        joined = await duplicates.join(
            repo,
            public_id,
            ref.person_id,
            origin_platform=message.platform.value,
            origin_chat=message.chat_id,
            origin_chat_type=message.chat_type.value,
            words=self.words,
        )
        if joined.appeal is None:
            # Closed meanwhile: stay at the summary so that "确认提交" files the resident's own appeal.
            if state is not None:
                state.setdefault("meta", {}).pop("duplicate_of", None)
            return Handled([Prompt(self.words.get("duplicate.gone", public_id=public_id))], state)
        key = "duplicate.joined" if joined.added else "duplicate.already_supporter"
        return Handled([Prompt(self.words.get(key, public_id=public_id, supporters=joined.supporters))], None)

    # --- when an appeal is confirmed -------------------------------------------------------------------
    async def offer_duplicate(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, state: dict[str, Any]
    ) -> list[Prompt] | None:
        """Prompts offering to join a similar open appeal, once per dialog; None to file as usual."""
        meta = state.setdefault("meta", {})
        if meta.get("duplicate_checked"):
            return None
        meta["duplicate_checked"] = True
        slots = state.get("slots", {})
        match = await duplicates.find_duplicate(
            repo.session,
            community_id=ref.community_id,
            place=slots.get("place") or {},
            description=str(slots.get("description") or ""),
            kb_matter_id=meta.get("kb"),
            window_days=self.settings.duplicate_window_days,
        )
        if match is None:
            return None
        meta["duplicate_of"] = match.public_id
        w = self.words
        status = AppealStatus(match.status).label
        if match.reporter_id == ref.person_id:
            text = w.get(
                "duplicate.offer_own",
                date=match.created_at.astimezone(self._tz).strftime("%m月%d日"),
                public_id=match.public_id,
                status=status,
            )
            buttons = (
                Button(w.get("duplicate.new_button"), "/confirm"),
                Button(w.get("duplicate.cancel_button"), "/cancel"),
            )
            return [Prompt(text, buttons)]
        text = w.get(
            "duplicate.offer",
            public_id=match.public_id,
            summary=self._summary(match, message),
            place=describe_place(_place_of(match), private=False),
            status=status,
            supporters=match.supporters,
        )
        buttons = (
            Button(w.get("duplicate.join_button"), f"/support {match.public_id}"),
            Button(w.get("duplicate.new_button"), "/confirm"),
        )
        return [Prompt(text, buttons)]

    @staticmethod
    def _summary(appeal: Appeal, message: IncomingMessage) -> str:
        # Another resident's words: in a group only the first few, as a hint of what it is about.
        summary = summary_of(appeal)
        return summary[:12] + "…" if message.is_group and len(summary) > 12 else summary

    # --- "我的诉求进度" ---------------------------------------------------------------------------------
    async def progress_note(self, repo: Repository, appeal: Appeal) -> str:
        return await latest_status_note(repo.session, appeal.id)


def _place_of(appeal: Appeal) -> dict[str, Any]:
    return {
        "building": appeal.building,
        "unit": appeal.unit,
        "room": appeal.room,
        "place": appeal.place,
    }
