"""What one turn knows and what it produces, handed from stage to stage of the pipeline and to every
handler: :class:`TurnContext`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.db.repository import ConversationRef, Repository
from bot.dialog.engine import Prompt, PromptContext
from bot.handoff import Verdict
from bot.message import Button, IncomingMessage
from bot.nlu.base import Intent, Understanding
from bot.state import ConversationKey


@dataclass(slots=True)
class TurnOutput:
    """What one turn produces, collected as its handlers run.

    The handoff desk reads and writes part of it (its ``TurnOutput`` protocol): ``handoff`` asks for
    staff after the turn, ``not_understood`` marks a reply that did not understand the resident.
    """

    prompts: list[Prompt] = field(default_factory=list)
    state: dict[str, Any] | None = None
    private_state: dict[str, Any] | None = None  # a dialog moving into the resident's private chat
    intent: str | None = None
    handoff: str | None = None  # this turn asks for staff: asked | emergency (see bot/handoff)
    not_understood: bool = False
    not_understood_at: int | None = None
    """Which prompt says "not understood": the desk may replace it, and its transcript row is flagged."""
    chat_changed: bool = False  # a staff command rebound the chat: cached ids of its conversations are stale
    erased: bool = False  # the resident's data was erased this turn: nothing more is recorded for them

    def say(self, text: str, buttons: tuple[Button, ...] = (), *, private: bool = False) -> None:
        self.prompts.append(Prompt(text, buttons, private))


@dataclass(frozen=True, slots=True)
class Probes:
    """What the turn's opening read from Redis says the turn may skip (one round trip, with the lock)."""

    maybe_held: bool
    """A held marker exists, or the markers are not known to be complete: the desk asks the database."""
    state_known: bool
    """No state means no dialog: the database's durable copy of the dialog state need not be read."""
    comment_pending: bool
    """The resident was asked for a comment on their rating."""


@dataclass(slots=True)
class TurnContext:
    """One message under its conversation's lock, inside the turn's unit of work."""

    message: IncomingMessage
    key: ConversationKey
    understanding: Understanding
    repo: Repository
    ref: ConversationRef
    probes: Probes
    out: TurnOutput
    command: tuple[str | None, str]
    """The command the message gives (``("status", "HY-…")``), or ``(None, "")``."""
    prompt_context: PromptContext
    """What the dialog's wording needs (the resident's name, the chat, a saved phone…)."""
    in_dialog: bool = False
    """Routing a question asked in the middle of a form: the form resumes after the answer."""
    verdict: Verdict = Verdict.PASS
    """What the staff desk made of the message (it is counted in the turn metrics)."""

    @property
    def intent(self) -> Intent:
        return self.understanding.intent.name

    known_commands: frozenset[str] = frozenset()
    """The commands some handler takes (:attr:`Handler.commands`)."""

    @property
    def command_name(self) -> str | None:
        """The command this message gives, when it is one a handler takes (``/kb`` needs its matter);
        a message with any other command is routed by its intent."""
        name, arg = self.command
        if name not in self.known_commands or (name == "kb" and not arg):
            return None
        return name

    @property
    def dialog_state(self) -> dict[str, Any] | None:
        """The running dialog's state, when a dialog is running."""
        state = self.out.state
        return state if state is not None and state.get("dialog") else None
