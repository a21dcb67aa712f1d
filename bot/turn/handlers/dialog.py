"""The running form: its next step, a question asked in the middle of it (answered, then the form
resumes), a form left idle too long (closed), and its confirmation (the appeal is filed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import structlog

from bot.appeals.filing import appeal_from_form
from bot.dialog.engine import Turn
from bot.dialog.slots import bare, mask_personal
from bot.message import ChatType
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome, run_handlers
from bot.turn.handlers.report import classify, take_step
from bot.turn.render import GroupNotice
from bot.turn.services import Services

log = structlog.get_logger(__name__)


class ExpiredDialogHandler(Handler):
    """A form left idle past its timeout is closed; the message is then read afresh (unless it is only
    "好的" or the like, which answered the old form)."""

    def check(self, turn: TurnContext) -> bool:
        state = turn.dialog_state
        return state is not None and self.services.engine.expired(
            state, self.services.settings.dialog_idle_timeout_s
        )

    async def handle(self, turn: TurnContext) -> Outcome:
        state = turn.dialog_state
        assert state is not None
        description = str(state["slots"].get("description") or "问题")
        if turn.message.is_group:  # the resident's words may name a phone or a flat
            description = mask_personal(description)
        turn.out.say(
            self.services.words.get(
                "appeal.expired",
                description=description[:20],
                minutes=self.services.settings.dialog_idle_timeout_s // 60,
            )
        )
        turn.out.state = None
        trivial = len(bare(turn.message.text)) <= 2 and not turn.message.attachments
        return Outcome.DONE if trivial else Outcome.CONTINUE


class RunningDialogHandler(Handler):
    """The form's next step. A question that interrupts it goes to ``route`` (the handlers outside a
    form) with :attr:`~TurnContext.in_dialog` set, and the form's current question follows the answer."""

    def __init__(self, services: Services, route: Sequence[Handler]) -> None:
        super().__init__(services)
        self.route = route

    def check(self, turn: TurnContext) -> bool:
        return turn.dialog_state is not None

    async def handle(self, turn: TurnContext) -> Outcome:
        state = turn.dialog_state
        assert state is not None
        engine = self.services.engine
        step = engine.step(state, turn.understanding, turn.message, turn.prompt_context)
        if step.interrupted:
            turn.in_dialog = True
            await run_handlers(self.route, turn)
            turn.out.prompts.append(engine.resume(state, turn.prompt_context))
            return Outcome.DONE
        await self._apply(turn, step)
        return Outcome.DONE

    async def _apply(self, turn: TurnContext, step: Turn) -> None:
        """Carry out a step: its prompts, its new state, its action, a move to private."""
        state = step.state
        if (
            state is not None
            and state.get("slots", {}).get("description")
            and "kb" not in state.get("meta", {})
        ):
            classify(self.services, state, turn.ref.community_code)
            if state["state"] == "confirm" and step.prompts:
                # The summary was rendered before the classification was known: render it again.
                ctx = replace(turn.prompt_context, party=state["meta"].get("party_name"))
                step.prompts[-1] = self.services.engine.current_prompt(state, ctx)
        if step.action == "create_appeal" and state is not None:
            await file_from_form(self.services, turn, state)
            return
        if step.action is not None:
            raise ValueError(f"dialog asked for unknown action {step.action!r}")
        take_step(turn, step)


async def file_from_form(services: Services, turn: TurnContext, state: dict[str, Any]) -> None:
    """The resident confirmed the form: file the appeal (or offer the open one at the same place)."""
    out, message = turn.out, turn.message
    offer = await services.follow_up.offer_duplicate(turn.repo, turn.ref, message, state)
    if offer is not None:  # an open appeal at the same place: offer to join it (bot/appeals)
        out.prompts.extend(offer)
        out.state = state
        return
    slots, meta, origin = state["slots"], state.get("meta", {}), state["origin"]
    new = appeal_from_form(
        draft_key=state["draft_key"],
        description=str(slots["description"]),
        slots=slots,
        meta=meta,
        origin=origin,
    )
    appeal, created = await services.filing.file(turn.repo, new, turn.ref, source="dialog")
    words = services.words
    out.state = None
    if not created:
        out.say(words.get("appeal.already_created", public_id=appeal.public_id))
        return
    if new.contact_phone:
        await turn.repo.people.set_phone(turn.ref.person_id, new.contact_phone)
    if appeal.incident_case is not None:  # one of many reports of an area-wide incident: one case
        rule = services.incidents.rule_for(turn.ref.community_code, new.category, new.kb_matter_id)
        label = rule.label if rule is not None else ""
        out.say(words.get("incident.merged_after_form", case=appeal.incident_case, label=label))
        log.info("appeal merged into incident", public_id=appeal.public_id, case=appeal.incident_case)
        return
    party = meta.get("party_name")
    out.say(
        words.get(
            "appeal.created",
            public_id=appeal.public_id,
            party_sentence=words.get("appeal.created_party", party=party) if party else "",
            sla_hours=services.settings.first_response_hours,
        )
    )
    if origin["chat_type"] == ChatType.GROUP.value and origin["chat_id"] != message.chat_id:
        text = words.get(
            "appeal.created_group", name=message.sender_name or "居民", public_id=appeal.public_id
        )
        out.prompts.append(GroupNotice(text, origin_chat=origin["chat_id"]))
    log.info("appeal created", public_id=appeal.public_id, community=turn.ref.community_code)
