"""Starting the appeal form: "我要报修", a report understood as such, the ``/report`` command (with the
problem after it, or under an answer: the question asked before it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.dialog.engine import Turn
from bot.nlu.base import Intent, Understanding
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize
from bot.nlu.rules import told_not_live
from bot.turn.context import TurnContext
from bot.turn.handlers.base import Handler, Outcome
from bot.turn.services import Services


class ReportHandler(Handler):
    commands = frozenset({"report"})

    def check(self, turn: TurnContext) -> bool:
        command = turn.command_name
        if command == "report":
            return True
        return command is None and turn.intent is Intent.REPORT and not turn.in_dialog

    async def handle(self, turn: TurnContext) -> Outcome:
        if turn.command_name != "report":
            await start_appeal(self.services, turn, arg=None)
            return Outcome.DONE
        if turn.in_dialog:
            return Outcome.DONE  # a form is running already: it resumes
        arg = turn.command[1]
        if not arg:
            # The "帮我登记这个问题" button under an answer: the question is the description.
            arg = (
                await turn.repo.conversations.recent_question(
                    turn.ref.conversation_id, exclude_message_id=turn.message.message_id
                )
                or ""
            )
        await start_appeal(self.services, turn, arg=arg or None)
        return Outcome.DONE


async def start_appeal(services: Services, turn: TurnContext, *, arg: str | None) -> None:
    """Open the appeal form, from ``arg`` ("/report 楼道灯坏了": the rest is the form's first message)
    or from the message itself."""
    message, u = turn.message, turn.understanding
    if arg is not None:
        message = replace(message, text=arg)
        u = _entities_only(u, arg)
    saved_phone = await turn.repo.people.saved_phone(turn.ref.person_id)
    ctx = replace(turn.prompt_context, saved_phone=saved_phone)
    step = services.engine.start("appeal", u, message, ctx)
    state = step.state
    if state is not None:
        # Whose form it is: a form that outlives its resident's erasure is not theirs to finish.
        state["person"] = turn.ref.person_id
    if state is not None and saved_phone:
        state["meta"]["saved_phone"] = saved_phone
    if state is not None and state["slots"].get("description"):
        classify(services, state, turn.ref.community_code)
        if state["state"] == "confirm":
            ctx = replace(ctx, party=state["meta"].get("party_name"))
            step.prompts[-1] = services.engine.current_prompt(state, ctx)
    take_step(turn, step)


def take_step(turn: TurnContext, step: Turn) -> None:
    """A form's step into the turn output: its prompts, and its state here or in the private chat."""
    turn.out.prompts.extend(step.prompts)
    if step.move_private:
        turn.out.private_state, turn.out.state = step.state, None
    else:
        turn.out.state = step.state


def classify(services: Services, state: dict[str, Any], community: str) -> None:
    """Which KB matter and party the appeal is about: shown in the summary, stored on the appeal."""
    meta = state.setdefault("meta", {})
    description = normalize(str(state["slots"]["description"]))
    answer = services.kb.lookup(description, community, ordinary=told_not_live(description))
    meta["kb"] = answer.matter_id if answer else None
    if answer is not None:
        meta.update(
            category=answer.category,
            party=answer.first_contact.party,
            party_sub=answer.first_contact.sub,
            party_name=answer.first_contact.name,
            urgent=answer.emergency,
        )


def _entities_only(u: Understanding, text: str) -> Understanding:
    normalized = normalize(text)
    return Understanding(
        text=normalized, intent=u.intent, entities=extract_entities(normalized), ranking=u.ranking
    )
