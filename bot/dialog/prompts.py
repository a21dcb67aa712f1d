"""What a dialog says: the question of a state, the summary to confirm, its buttons, a slot's value as
shown to the resident, rendered from dialogs/responses.yml for one conversation (:class:`PromptContext`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.dialog.slots import SLOT_TYPES, mask_phone
from bot.dialog.spec import ButtonSpec, DialogBundle, DialogSpec, StateSpec
from bot.message import Button


@dataclass(frozen=True, slots=True)
class PromptContext:
    """What the dialog's wording needs to know about the conversation it is rendered for."""

    bot_name: str
    in_group: bool
    sender_name: str = ""
    chat_title: str = ""
    saved_phone: str | None = None
    party: str | None = None  # who is likely responsible, for the summary ("物业服务企业")
    retention_days: int = 180  # how long a phone number is kept after the appeal is finished


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    buttons: tuple[Button, ...] = ()
    private: bool = False  # send privately to the resident rather than into the chat


class DialogPrompts:
    def __init__(self, bundle: DialogBundle) -> None:
        self.bundle = bundle
        self.words = bundle.responses

    def prompt(
        self,
        spec: DialogSpec,
        st: StateSpec,
        state: dict[str, Any],
        ctx: PromptContext,
        *,
        key: str | None = None,
    ) -> Prompt:
        key = key if key is not None else st.prompt
        private = st.private or not ctx.in_group
        if st.confirm:
            values = {name: self.slot_display(state, name, private=private) for name in spec.slots}
            party_line = self.words.get("appeal.summary_party", party=ctx.party) if ctx.party else ""
            text = self.words.get(key, party_line=party_line, **values)
        elif key == "appeal.ask_contact" and ctx.saved_phone:
            text = self.words.get(
                "appeal.ask_contact_saved",
                phone_masked=mask_phone(ctx.saved_phone),
                retention_days=ctx.retention_days,
            )
        else:
            text = self.words.get(key, bot_name=ctx.bot_name, retention_days=ctx.retention_days)
        return Prompt(text, self.buttons(st.buttons, ctx), private=st.private and ctx.in_group)

    def buttons(self, specs: tuple[ButtonSpec, ...], ctx: PromptContext) -> tuple[Button, ...]:
        flags = {"saved_phone": bool(ctx.saved_phone)}
        return tuple(Button(b.title, b.payload) for b in specs if b.when is None or flags.get(b.when, False))

    def slot_display(self, state: dict[str, Any], slot: str, *, private: bool) -> str:
        spec = self.bundle.dialogs[state["dialog"]]
        value = state["slots"].get(slot)
        if not value:
            return self.words.get("appeal.no_contact" if slot == "contact" else "appeal.no_photo")
        return SLOT_TYPES[spec.slots[slot].type].display(value, private=private, words=self.words)

    def resume(self, state: dict[str, Any], ctx: PromptContext) -> Prompt:
        """The current question again, introduced as a continuation (after an interrupting question)."""
        spec = self.bundle.dialogs[state["dialog"]]
        st = spec.state(state["state"])
        prompt = self.prompt(spec, st, state, ctx)
        return Prompt(self.words.get("appeal.resume", prompt=prompt.text), prompt.buttons, prompt.private)

    def current_prompt(self, state: dict[str, Any], ctx: PromptContext) -> Prompt:
        """The current question of a running dialog."""
        spec = self.bundle.dialogs[state["dialog"]]
        return self.prompt(spec, spec.state(state["state"]), state, ctx)
