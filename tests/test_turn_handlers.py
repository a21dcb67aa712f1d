"""The turn's handlers on their own: which handler a turn reaches, with a fake repository instead of a
database (no unit of work, no Redis), so the order of the handlers is cheap to pin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from bot.db.repository import ConversationRef, Repository
from bot.dialog.engine import PromptContext
from bot.message import ChatType, IncomingMessage, Platform
from bot.nlu.base import Intent, IntentScore, Understanding
from bot.runtime import Runtime
from bot.state import ConversationKey
from bot.turn.context import Probes, TurnContext, TurnOutput
from bot.turn.handlers import routing_handlers, run_handlers, turn_handlers


@dataclass
class FakeAppeals:
    """What the routing handlers read of appeals: a resident with none."""

    asked: list[int] = field(default_factory=list)

    async def appeals_of(self, person_id: int, limit: int = 5) -> list[Any]:
        self.asked.append(person_id)
        return []


@dataclass
class FakeRepository:
    appeals: FakeAppeals = field(default_factory=FakeAppeals)


def turn(runtime: Runtime, text: str, intent: Intent, *, in_dialog: bool = False) -> TurnContext:
    message = IncomingMessage(
        platform=Platform.REST,
        chat_id="p-1",
        chat_type=ChatType.PRIVATE,
        sender_id="wang",
        sender_name="王阿姨",
        text=text,
        message_id="m-1",
    )
    pipeline = runtime.dispatcher
    return TurnContext(
        message=message,
        key=ConversationKey.of(message),
        understanding=Understanding(text=text, intent=IntentScore(intent, 0.99), entities=(), ranking=()),
        repo=cast(Repository, FakeRepository()),
        ref=ConversationRef(1, 2, 3, runtime.settings.default_community, 4),
        probes=Probes(maybe_held=False, state_known=True, comment_pending=False),
        out=TurnOutput(),
        command=pipeline.etiquette.command(message),
        prompt_context=PromptContext(bot_name="回音", in_group=False, sender_name="王阿姨"),
        known_commands=pipeline.known_commands,
        in_dialog=in_dialog,
    )


def words(runtime: Runtime, key: str) -> str:
    return runtime.dispatcher.words.get(key, bot_name=runtime.settings.bot_name)


async def test_a_command_comes_before_the_intent(runtime: Runtime) -> None:
    t = turn(runtime, "/status", Intent.GREET)
    await run_handlers(routing_handlers(runtime.dispatcher.services), t)
    assert [p.text for p in t.out.prompts] == [words(runtime, "status.none")]
    assert cast(FakeRepository, t.repo).appeals.asked == [2]


async def test_a_command_no_handler_takes_is_routed_by_its_intent(runtime: Runtime) -> None:
    # "/confirm" is a form's own command: outside a form it is read like any other message.
    t = turn(runtime, "/confirm", Intent.GREET)
    await run_handlers(routing_handlers(runtime.dispatcher.services), t)
    assert [p.text for p in t.out.prompts] == [words(runtime, "greet")]


async def test_a_report_in_the_middle_of_a_form_opens_no_second_form(runtime: Runtime) -> None:
    t = turn(runtime, "随便说说", Intent.REPORT, in_dialog=True)
    await run_handlers(routing_handlers(runtime.dispatcher.services), t)
    assert t.out.state is None and t.out.not_understood  # the fallback: the form then resumes
    assert t.out.prompts[t.out.not_understood_at or 0].text == words(runtime, "not_understood")


async def test_asking_for_a_person_is_left_to_the_desk_after_the_turn(runtime: Runtime) -> None:
    t = turn(runtime, "转人工", Intent.GREET)  # a command word: it beats the intent
    await run_handlers(routing_handlers(runtime.dispatcher.services), t)
    assert t.out.handoff == "asked" and t.out.prompts == []


def test_the_order_of_a_turns_handlers(runtime: Runtime) -> None:
    names = [type(h).__name__ for h in turn_handlers(runtime.dispatcher.services)]
    assert names == [
        "AnnounceHandler",
        "StaffCommandsHandler",
        "CaseCommandsHandler",
        "RelayHandler",
        "StaffChatHandler",
        "HandlerChatHandler",
        "PrivacyHandler",
        "HeldConversationHandler",
        "PausedDraftHandler",
        "FollowUpHandler",
        "IncidentJoinHandler",
        "ExpiredDialogHandler",
        "DialogEmergencyHandler",
        "NeighbourTalkHandler",
        "RunningDialogHandler",
        "KBChoiceHandler",
        "HelpHandler",
        "ListenHandler",
        "EmergencyHandler",
        "AnnouncementAnswerHandler",
        "IncidentHandler",
        "ReportHandler",
        "AskContactHandler",
        "StatusHandler",
        "HumanHandler",
        "GreetHandler",
        "ThanksHandler",
        "CancelHandler",
        "FallbackHandler",
    ]


async def test_a_paused_form_lets_a_new_message_through_as_if_no_form_were_open(runtime: Runtime) -> None:
    """The offer of a form staff gave back lapses on anything but an answer to it: the message goes on to
    the handlers outside a form (here the greeting), and the draft is gone."""
    from bot.turn.handlers.draft import PausedDraftHandler

    services = runtime.dispatcher.services
    t = turn(runtime, "你好", Intent.GREET)
    t.out.state = {
        "dialog": "appeal",
        "state": "place",
        "slots": {"description": "水管漏水"},
        "paused": {"reason": "released"},
    }
    await run_handlers([PausedDraftHandler(services), *routing_handlers(services)], t)
    assert t.out.state is None and [p.text for p in t.out.prompts] == [words(runtime, "greet")]
