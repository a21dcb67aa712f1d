"""The offer to join an open appeal at the same place instead of filing a second case (+1), and the
answers to it: "加入支持" joins the offered appeal, "仍然单独提交" (:data:`NEW_APPEAL`) files the
resident's own."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from bot.appeals import duplicates
from bot.appeals.access import Role, visible_appeal
from bot.appeals.handled import Handled
from bot.appeals.notify import public_summary
from bot.db.models import Appeal, AppealStatus
from bot.db.repository import ConversationRef, Repository
from bot.dialog.engine import Prompt
from bot.dialog.slots import describe_place
from bot.dialog.spec import Responses
from bot.message import Button, IncomingMessage
from bot.settings import Settings

# "仍然单独提交" under a duplicate offer. Not the summary's "/confirm": a double-clicked 确认提交 arrives
# as a second "/confirm" once the offer is shown, and must not file the appeal in the resident's place.
NEW_APPEAL = "/confirm new"
JOIN_WORDS = frozenset({"加入", "加入支持", "支持", "加入这条", "加入这条诉求", "是同一个", "同一个问题"})


class DuplicateOffers:
    def __init__(self, settings: Settings, words: Responses) -> None:
        self.settings = settings
        self.words = words
        self._tz = ZoneInfo(settings.timezone)

    async def offer(
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
        meta["duplicate_own"] = match.reporter_id == ref.person_id
        w = self.words
        status = AppealStatus(match.status).label
        if meta["duplicate_own"]:
            text = w.get(
                "duplicate.offer_own",
                date=match.created_at.astimezone(self._tz).strftime("%m月%d日"),
                public_id=match.public_id,
                status=status,
            )
            return [Prompt(text, self.buttons(meta))]
        text = w.get(
            "duplicate.offer",
            public_id=match.public_id,
            summary=_summary(match, message),
            place=describe_place(_place_of(match), private=False),
            status=status,
            supporters=match.supporters,
        )
        return [Prompt(text, self.buttons(meta))]

    def buttons(self, meta: dict[str, Any]) -> tuple[Button, ...]:
        w = self.words
        if meta.get("duplicate_own"):
            return (
                Button(w.get("duplicate.new_button"), NEW_APPEAL),
                Button(w.get("duplicate.cancel_button"), "/cancel"),
            )
        return (
            Button(w.get("duplicate.join_button"), f"/support {meta['duplicate_of']}"),
            Button(w.get("duplicate.new_button"), NEW_APPEAL),
        )

    async def join(
        self,
        repo: Repository,
        ref: ConversationRef,
        message: IncomingMessage,
        public_id: str,
        state: dict[str, Any] | None,
    ) -> Handled:
        """Join the appeal offered in this dialog. Only the offered one: a supporter hears of an appeal's
        progress, so a ``/support`` with any other id (typed by hand) joins nothing."""
        assert state is not None
        meta = state.setdefault("meta", {})
        offered = str(meta.get("duplicate_of") or "")
        joined = (
            await duplicates.join_here(repo, public_id, ref, message, self.words)
            if public_id == offered
            else None
        )
        if joined is None or joined.appeal is None:
            if joined is not None:
                # The offered appeal closed meanwhile: "加入支持" no longer joins it, and "仍然单独提交"
                # files the resident's own appeal (the dialog stays at its summary).
                meta.pop("duplicate_of", None)
            w = self.words
            buttons = (
                Button(w.get("duplicate.new_button"), NEW_APPEAL),
                Button(w.get("duplicate.cancel_button"), "/cancel"),
            )
            return Handled([Prompt(w.get("duplicate.refused"), buttons)], state)
        key = "duplicate.joined" if joined.added else "duplicate.already_supporter"
        return Handled([Prompt(self.words.get(key, public_id=public_id, supporters=joined.supporters))], None)

    async def join_unoffered(
        self, repo: Repository, ref: ConversationRef, public_id: str, state: dict[str, Any] | None
    ) -> Handled:
        """``/support`` without an offer open: the resident who already joined (or reported) it pressed
        the button again and is told so; for anyone else it joins nothing, whatever the id."""
        visible = await visible_appeal(repo.session, public_id, ref.person_id)
        if visible is not None and visible.role in {Role.REPORTER, Role.SUPPORTER}:
            text = self.words.get("duplicate.already_supporter", public_id=visible.appeal.public_id)
        else:
            text = self.words.get("duplicate.refused")
        return Handled([Prompt(text)], state)


def _summary(appeal: Appeal, message: IncomingMessage) -> str:
    # Another resident's words: their phones and rooms masked, and in a group only the first few, as
    # a hint of what it is about.
    summary = public_summary(appeal)
    return summary[:12] + "…" if message.is_group and len(summary) > 12 else summary


def _place_of(appeal: Appeal) -> dict[str, Any]:
    return {
        "building": appeal.building,
        "unit": appeal.unit,
        "room": appeal.room,
        "place": appeal.place,
    }
