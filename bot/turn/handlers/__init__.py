"""The bot's capabilities, in the order a message is offered to them (see :mod:`bot.turn.handlers.base`).

A new capability is a new handler placed in this list, not an edit of the pipeline.
"""

from __future__ import annotations

from bot.turn.handlers.announcements import AnnounceHandler, AnnouncementAnswerHandler
from bot.turn.handlers.answers import AskContactHandler, FallbackHandler, KBChoiceHandler
from bot.turn.handlers.base import Handler, Outcome, run_handlers
from bot.turn.handlers.cases import CaseCommandsHandler, HandlerChatHandler
from bot.turn.handlers.conversation import (
    CancelHandler,
    GreetHandler,
    HelpHandler,
    HumanHandler,
    ThanksHandler,
)
from bot.turn.handlers.dialog import ExpiredDialogHandler, RunningDialogHandler
from bot.turn.handlers.draft import PausedDraftHandler
from bot.turn.handlers.emergency import DialogEmergencyHandler, EmergencyHandler
from bot.turn.handlers.follow_up import FollowUpHandler
from bot.turn.handlers.incidents import IncidentHandler, IncidentJoinHandler
from bot.turn.handlers.listen import ListenHandler
from bot.turn.handlers.neighbours import NeighbourTalkHandler
from bot.turn.handlers.privacy import PrivacyHandler
from bot.turn.handlers.report import ReportHandler
from bot.turn.handlers.staff import (
    HeldConversationHandler,
    RelayHandler,
    StaffChatHandler,
    StaffCommandsHandler,
)
from bot.turn.handlers.status import StatusHandler
from bot.turn.services import Services


def routing_handlers(services: Services) -> list[Handler]:
    """A message outside a form, or a question that interrupts one: a command it gives first, then its
    intent, then the fallback."""
    return [
        KBChoiceHandler(services),
        HelpHandler(services),
        ListenHandler(services),
        EmergencyHandler(services),
        AnnouncementAnswerHandler(services),
        IncidentHandler(services),
        ReportHandler(services),
        AskContactHandler(services),
        StatusHandler(services),
        HumanHandler(services),
        GreetHandler(services),
        ThanksHandler(services),
        CancelHandler(services),
        FallbackHandler(services),
    ]


def turn_handlers(services: Services) -> list[Handler]:
    """Every handler of a turn: the staff desk's and the case desk's (staff commands, case commands,
    relays, the staff and handler chats, conversations staff hold), then a form staff held and gave back
    (offered to the resident again), a resident's rights over their data (withdraw, see, erase), then what follows up an appeal (a rating, a duplicate offer's answer, an incident's join button), then a running form (safety before
    the form's next step), then routing."""
    route = routing_handlers(services)
    return [
        AnnounceHandler(services),
        StaffCommandsHandler(services),
        CaseCommandsHandler(services),
        RelayHandler(services),
        StaffChatHandler(services),
        HandlerChatHandler(services),
        PrivacyHandler(services),
        HeldConversationHandler(services),
        PausedDraftHandler(services),
        FollowUpHandler(services),
        IncidentJoinHandler(services),
        ExpiredDialogHandler(services),
        DialogEmergencyHandler(services),
        NeighbourTalkHandler(services),
        RunningDialogHandler(services, route),
        *route,
    ]


__all__ = ["Handler", "Outcome", "routing_handlers", "run_handlers", "turn_handlers"]
