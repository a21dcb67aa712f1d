"""What bot/appeals adds to a conversation turn. The dispatcher hands over in three places:

- :meth:`FollowUp.intercept`, before the dialog engine: a rating (the ``/rate`` button, or "不满意"
  when the resident has a resolved appeal waiting for a rating), the optional comment after a rating,
  the answer to a duplicate offer ("加入支持" / ``/support``), and a finished step's button pressed again
  (a double-clicked 确认提交);
- :meth:`FollowUp.offer_duplicate`, when an appeal is confirmed: offer to join an open appeal at the
  same place instead of filing a second case (answering "仍然单独提交" sends :data:`NEW_APPEAL`, which
  then files the appeal; a second ``/confirm``, 确认提交 clicked twice, asks to choose instead);
- :meth:`FollowUp.progress_note`, for "我的诉求进度": the note of the latest status change, and
  :meth:`FollowUp.status_of`, for ``/status HY-…``.

Every appeal named by its id is looked up through :mod:`bot.appeals.access`: ids are sequential, and a
resident learns nothing of appeals they are not connected to.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.addressing import Addressing
from bot.appeals import rating
from bot.appeals.access import Role, visible_appeal
from bot.appeals.handled import Handled
from bot.appeals.offers import JOIN_WORDS, NEW_APPEAL, DuplicateOffers
from bot.appeals.status import latest_status_note
from bot.db.models import Appeal, AppealStatus, utcnow
from bot.db.repository import ConversationRef, Repository
from bot.dialog.engine import Prompt
from bot.dialog.slots import bare, mask_personal
from bot.dialog.spec import Responses
from bot.message import IncomingMessage
from bot.nlu.base import EntityType, Intent, Understanding
from bot.settings import Settings
from bot.state import ConversationKey, Keys, StateStore

COMMENT_WINDOW_S = 1800  # how long after rating the next message is taken as the optional comment
_RATE = re.compile(r"/rate\s+(\S+)\s+(satisfied|basic|unsatisfied)")
_JOIN = re.compile(r"/support\s+(\S+)")
SKIP_WORDS = frozenset({"跳过", "不用", "不用了", "没有", "没了", "没有了", "算了", "不说了", "skip"})


class FollowUp:
    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        words: Responses,
        bot_names: tuple[str, ...],
        step_buttons: frozenset[str] = frozenset(),
    ) -> None:
        """``step_buttons``: the payloads of the dialogs' step buttons (``/confirm``, ``/skip``…), which
        mean nothing once the dialog is over (:meth:`DialogBundle.step_buttons`)."""
        self.settings = settings
        self.store = store
        self.words = words
        self.step_buttons = step_buttons
        self._tz = ZoneInfo(settings.timezone)
        self._addressing = Addressing(bot_names)
        self.offers = DuplicateOffers(settings, words)

    def _text(self, message: IncomingMessage) -> str:
        """The message without the @-mentions and the bot's name that addressed it in a group."""
        return self._addressing.without_address(message.text)

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
        in_dialog = state is not None and bool(state.get("dialog"))
        joined = _JOIN.fullmatch(text)
        if meta.get("duplicate_of"):
            if text == "/confirm":  # the summary's button again: the offer is still to be answered
                choose = self.words.get("duplicate.choose")
                return Handled([Prompt(choose, self.offers.buttons(meta))], state)
            if joined or bare(text) in JOIN_WORDS:
                public_id = joined.group(1) if joined else str(meta["duplicate_of"])
                return await self.offers.join(repo, ref, message, public_id, state)
            return None
        if joined:  # no offer open: a join button pressed again, or an id typed by hand
            return await self.offers.join_unoffered(repo, ref, joined.group(1), state)
        if in_dialog or u.intent.name is Intent.EMERGENCY:
            return None
        if text in self.step_buttons or text == NEW_APPEAL:
            return await self._finished_step(repo, ref, state)
        word = bare(text)
        said = rating.rating_in(word)
        if said is not None:
            appeal = await rating.awaiting_rating(repo.session, ref.person_id)
            if appeal is not None:
                value, more = said
                # "不满意！还在滴水": the rating, and the rest is the comment the resident would be asked for.
                return await self._rate(
                    repo, ref, message, appeal.public_id, value, state, comment=text if more else ""
                )
        if not comment_pending:
            return None
        key = self.comment_key(ConversationKey.of(message))
        pending = await self.store.redis.get(key)
        if pending is None or text.startswith("/"):
            return None
        if u.intent.name in (Intent.STATUS, Intent.HUMAN) or any(
            e.type is EntityType.APPEAL_ID for e in u.entities
        ):  # a question of its own ("查一下 HY-… 进度"), not a comment on the rating
            return None
        await self.store.redis.delete(key)
        if word in SKIP_WORDS:
            return Handled([Prompt(self.words.get("rating.comment_skipped"))], state)
        found_appeal = await repo.appeals.appeal_by_public_id(str(pending))
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
        *,
        comment: str = "",
    ) -> Handled:
        # Only the appeal's own people learn anything about it: a guessed id of someone else's appeal
        # is answered like an id that does not exist.
        visible = await visible_appeal(repo.session, public_id, ref.person_id)
        if visible is None:
            return Handled([Prompt(self.words.get("status.unknown_id"))], state)
        appeal = visible.appeal
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
        if result.outcome == "unknown":
            return Handled([Prompt(w.get("status.unknown_id"))], state)
        if result.outcome == "not_resolved":
            return Handled([Prompt(w.get("rating.not_resolved", public_id=public_id))], state)
        if result.outcome == "reopened":
            first = w.get(
                "rating.reopened", public_id=public_id, sla_hours=self.settings.first_response_hours
            )
        else:
            first = w.get(f"rating.thanks_{value}")
        if comment:
            await rating.comment(repo.session, appeal.id, ref.person_id, comment, words=w)
            return Handled([Prompt(first), Prompt(w.get("rating.comment_thanks"))], state)
        ask = (
            w.get("rating.ask_comment_group", bot_name=self.settings.bot_name)
            if message.is_group
            else w.get("rating.ask_comment")
        )
        await self.store.redis.set(
            self.comment_key(ConversationKey.of(message)), public_id, ex=COMMENT_WINDOW_S
        )
        return Handled([Prompt(first), Prompt(ask)], state)

    async def _finished_step(
        self, repo: Repository, ref: ConversationRef, state: dict[str, Any] | None
    ) -> Handled:
        """A button of a dialog step pressed after the dialog ended (a double click on 确认提交, an old
        message's button): say so kindly, with the appeal's id when this conversation just filed one. It
        is understood, so it does not count towards handing the conversation to staff."""
        since = utcnow() - timedelta(seconds=self.settings.dialog_idle_timeout_s)
        public_id = await repo.appeals.latest_filed_in(ref.conversation_id, ref.person_id, since=since)
        if public_id is not None:
            return Handled([Prompt(self.words.get("appeal.already_created", public_id=public_id))], state)
        return Handled([Prompt(self.words.get("appeal.step_finished"))], state)

    # --- "/status HY-…" --------------------------------------------------------------------------------
    async def status_of(self, repo: Repository, ref: ConversationRef, public_id: str) -> str:
        """One appeal's progress for the resident asking by its id. Its reporter and the building leader
        who relayed it read the latest handling note; a supporter reads only the public progress; anyone
        else, the same words as for an id that does not exist."""
        visible = await visible_appeal(repo.session, public_id, ref.person_id)
        w = self.words
        if visible is None:
            return w.get("status.unknown_id")
        appeal = visible.appeal
        note = ""
        if visible.role is not Role.SUPPORTER and appeal.status != AppealStatus.SUBMITTED:
            latest = await self.progress_note(repo, appeal)
            note = f"\n  {latest}" if latest else ""
        summary = (
            appeal.description if visible.role is not Role.SUPPORTER else mask_personal(appeal.description)
        )
        item = w.get(
            "status.item",
            public_id=appeal.public_id,
            status=AppealStatus(appeal.status).label,
            summary=summary[:24],
            date=appeal.created_at.astimezone(self._tz).strftime("%m-%d"),
            note=note,
        )
        return f"{w.get('status.one_header')}\n{item}"

    # --- when an appeal is confirmed -------------------------------------------------------------------
    async def offer_duplicate(
        self, repo: Repository, ref: ConversationRef, message: IncomingMessage, state: dict[str, Any]
    ) -> list[Prompt] | None:
        """Prompts offering to join a similar open appeal, once per dialog; None to file as usual."""
        return await self.offers.offer(repo, ref, message, state)

    # --- "我的诉求进度" ---------------------------------------------------------------------------------
    async def progress_note(self, repo: Repository, appeal: Appeal) -> str:
        return await latest_status_note(repo.session, appeal.id)
