"""The dialog engine: interprets ``dialogs/*.yml`` one turn at a time.

The engine is pure: it takes the resident's dialog state (a JSON-able dict), the understood message and
a little context, and returns a :class:`Turn` — what to say, the new state, and an action for the
caller to carry out (``create_appeal`` on confirmation). It touches no database, Redis or platform, which
is what lets one engine serve every channel and makes it cheap to test.

What it handles for every dialog: cancel at any step, corrections ("不对，是4栋"), an interrupting
question (returned as ``interrupted`` so that the turn answers it and then calls :meth:`resume`),
optional slots, private-only slots (``move_private``), editing from the summary, and idle expiry.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.dialog.prompts import DialogPrompts, Prompt, PromptContext
from bot.dialog.slots import INTERRUPTING_INTENTS, SKIP, SLOT_TYPES, Parsed, SlotContext, bare, is_skip
from bot.dialog.spec import DialogBundle, DialogSpec, Responses, StateSpec
from bot.message import IncomingMessage
from bot.nlu.base import Understanding

# An interrupting question must be understood at least this surely to take precedence over lenient
# free-text answers (a place described in words).
INTERRUPT_CONFIDENCE = 0.6


@dataclass(slots=True)
class Turn:
    """One step of a dialog: what to say, the new state, and an action for the caller to carry out."""

    prompts: list[Prompt] = field(default_factory=list)
    state: dict[str, Any] | None = None
    action: str | None = None
    interrupted: bool = False
    move_private: bool = False


class DialogEngine:
    def __init__(self, bundle: DialogBundle) -> None:
        self.bundle = bundle
        self.words = bundle.responses
        self.prompts = DialogPrompts(bundle)

    def start(self, name: str, u: Understanding, message: IncomingMessage, ctx: PromptContext) -> Turn:
        """Begin dialog ``name``, filling whatever the first message already says."""
        spec = self.bundle.dialogs[name]
        now = time.time()
        state: dict[str, Any] = {
            "dialog": name,
            "state": spec.start,
            "slots": {},
            "skipped": [],
            "draft_key": uuid.uuid4().hex,
            "started_at": now,
            "updated_at": now,
            "origin": {
                "platform": message.platform.value,
                "chat_id": message.chat_id,
                "chat_type": message.chat_type.value,
                "chat_title": message.chat_title,
            },
            "meta": {},
            "misses": 0,
        }
        for slot in spec.slots.values():
            value = SLOT_TYPES[slot.type].prefill(u, message, _slot_ctx(spec, slot.name, ctx, explicit=False))
            if value:
                state["slots"][slot.name] = value
        return self._enter(spec, state, spec.start, ctx, Turn())

    def step(
        self, state: dict[str, Any], u: Understanding, message: IncomingMessage, ctx: PromptContext
    ) -> Turn:
        """One answer within a running dialog."""
        spec = self.bundle.dialogs[state["dialog"]]
        st = spec.state(state["state"])
        state = {**state, "updated_at": time.time()}
        text = message.text.strip()
        slot_spec = spec.slots.get(st.ask) if st.ask else None

        # An optional slot's "不用了" means "skip this", not "cancel the whole appeal".
        if slot_spec is not None and slot_spec.optional:
            sctx = _slot_ctx(spec, slot_spec.name, ctx)
            if is_skip(u, message, sctx) or bare(text).removesuffix("了") in sctx.skip_words:
                return self._fill(spec, state, slot_spec.name, SKIP, ctx)
        if self.is_cancel(text):
            return Turn(prompts=[Prompt(self.words.get("appeal.cancelled"))], state=None)
        if st.confirm:
            return self._confirm_step(spec, st, state, u, message, ctx)
        assert slot_spec is not None

        correction = self._correction(spec, state, u, message, ctx, exclude=slot_spec.name)
        if correction is not None:
            return correction
        parsed = SLOT_TYPES[slot_spec.type].parse(u, message, _slot_ctx(spec, slot_spec.name, ctx))
        if parsed.ok and (parsed.strong or not _interrupting(u)):
            state = self._prefill_others(spec, state, slot_spec.name, u, message, ctx)
            return self._fill(spec, state, slot_spec.name, parsed.value, ctx)
        if _interrupting(u):
            return Turn(state=state, interrupted=True)
        state["misses"] = int(state.get("misses", 0)) + 1
        return Turn(prompts=[self.prompts.prompt(spec, st, state, ctx, key=st.invalid)], state=state)

    def resume(self, state: dict[str, Any], ctx: PromptContext) -> Prompt:
        """The current question again, introduced as a continuation (after an interrupting question)."""
        return self.prompts.resume(state, ctx)

    def current_prompt(self, state: dict[str, Any], ctx: PromptContext) -> Prompt:
        """The current question of a running dialog (rendered again once the context changed)."""
        return self.prompts.current_prompt(state, ctx)

    def is_cancel(self, text: str) -> bool:
        if text.strip() == "/cancel":
            return True
        b = bare(text)
        words = self.bundle.rules.cancel_words
        return b in words or (len(b) <= 8 and any(b.startswith(w) for w in words))

    @staticmethod
    def expired(state: dict[str, Any], timeout_s: float, now: float | None = None) -> bool:
        return (now or time.time()) - float(state.get("updated_at", 0)) > timeout_s

    def _prefill_others(
        self,
        spec: DialogSpec,
        state: dict[str, Any],
        current: str,
        u: Understanding,
        message: IncomingMessage,
        ctx: PromptContext,
    ) -> dict[str, Any]:
        """An answer may say more than was asked ("楼道的灯不亮了" also says where): keep it."""
        slots = dict(state["slots"])
        for name, slot in spec.slots.items():
            if name == current or _done(state, name):
                continue
            value = SLOT_TYPES[slot.type].prefill(u, message, _slot_ctx(spec, name, ctx, explicit=False))
            if value:
                slots[name] = value
        return {**state, "slots": slots}

    def _fill(
        self, spec: DialogSpec, state: dict[str, Any], slot: str, value: Any, ctx: PromptContext
    ) -> Turn:
        state = {**state, "slots": dict(state["slots"]), "skipped": list(state["skipped"]), "misses": 0}
        if value is SKIP:
            state["slots"].pop(slot, None)
            if slot not in state["skipped"]:
                state["skipped"].append(slot)
        else:
            state["slots"][slot] = value
            state["skipped"] = [s for s in state["skipped"] if s != slot]
        target: str | None
        if state.pop("return_to_confirm", False):
            target = _confirm_state(spec)
        else:
            target = spec.state(state["state"]).next
        if target is None:
            return Turn(state=None)
        return self._enter(spec, state, target, ctx, Turn())

    def _enter(
        self, spec: DialogSpec, state: dict[str, Any], name: str, ctx: PromptContext, turn: Turn
    ) -> Turn:
        """Move to state ``name``, skipping states whose slot is already filled, and ask its question."""
        st = spec.state(name)
        while st.ask is not None and _done(state, st.ask) and st.next is not None:
            st = spec.state(st.next)
        state["state"] = st.name
        if st.private and ctx.in_group:
            turn.move_private = True
            turn.prompts.append(Prompt(self.words.get("appeal.moved_private")))
            intro = self.words.get("appeal.private_intro", chat_title=ctx.chat_title or "群聊")
            prompt = self.prompts.prompt(spec, st, state, ctx)
            turn.prompts.append(Prompt(f"{intro}\n{prompt.text}", prompt.buttons, private=True))
        else:
            turn.prompts.append(self.prompts.prompt(spec, st, state, ctx))
        turn.state = state
        return turn

    def _correction(
        self,
        spec: DialogSpec,
        state: dict[str, Any],
        u: Understanding,
        message: IncomingMessage,
        ctx: PromptContext,
        *,
        exclude: str | None,
    ) -> Turn | None:
        """ "不对，是4栋": a correction prefix plus a value that strongly fits an already-filled slot."""
        b = bare(message.text)
        if not any(b.startswith(p) for p in self.bundle.rules.correction_prefixes):
            return None
        for name, slot in spec.slots.items():
            if name == exclude or not state["slots"].get(name):
                continue
            # Explicit: the slot is filled, so the resident answered its question before and now corrects
            # that answer ("不对，电话是139…"). Lenient free text is never strong, so it corrects nothing.
            parsed = SLOT_TYPES[slot.type].parse(u, message, _slot_ctx(spec, name, ctx))
            if parsed.ok and parsed.strong and parsed.value is not SKIP:
                return self._apply_correction(spec, state, name, parsed, ctx)
        return None

    def _apply_correction(
        self, spec: DialogSpec, state: dict[str, Any], slot: str, parsed: Parsed, ctx: PromptContext
    ) -> Turn:
        state = {**state, "slots": dict(state["slots"])}
        old, new = state["slots"].get(slot), parsed.value
        if isinstance(old, dict) and isinstance(new, dict) and "text" not in new:
            # "不对，是4栋" changes the building and keeps the unit and room already given.
            merged = {k: v for k, v in old.items() if k != "text"}
            merged.update(new)
            new = merged
        state["slots"][slot] = new
        private = not ctx.in_group
        shown = SLOT_TYPES[spec.slots[slot].type].display(new, private=private, words=self.words)
        label = self.words.get(f"appeal.slot_names.{slot}")
        st = spec.state(state["state"])
        turn = Turn(state=state)
        turn.prompts.append(Prompt(self.words.get("appeal.corrected", slot=label, value=shown)))
        turn.prompts.append(self.prompts.prompt(spec, st, state, ctx))
        return turn

    def _confirm_step(
        self,
        spec: DialogSpec,
        st: StateSpec,
        state: dict[str, Any],
        u: Understanding,
        message: IncomingMessage,
        ctx: PromptContext,
    ) -> Turn:
        text = message.text.strip()
        b = bare(text)
        # A button may say which confirmation it is ("/confirm new" under a duplicate offer).
        if text == "/confirm" or text.startswith("/confirm ") or b in spec.confirm_words:
            return Turn(prompts=[], state=state, action=st.on_confirm)
        if text == "/edit" or b in {"修改", "改", "改一下", "编辑"}:
            state["editing"] = True
            return Turn(
                prompts=[
                    Prompt(
                        self.words.get(st.edit_prompt or st.prompt),
                        self.prompts.buttons(st.edit_buttons, ctx),
                    )
                ],
                state=state,
            )
        target = _edit_target(self.words, spec, text, b)
        if target is not None:
            state.pop("editing", None)
            state["return_to_confirm"] = True
            asked = next(s for s in spec.states.values() if s.ask == target)
            return self._enter_exact(spec, state, asked, ctx)
        correction = self._correction(spec, state, u, message, ctx, exclude=None)
        if correction is not None:
            return correction
        if state.get("editing"):
            return Turn(prompts=[Prompt(self.words.get("appeal.edit_invalid"), self.prompts.buttons(st.edit_buttons, ctx))],
                        state=state)  # fmt: skip
        if _interrupting(u):
            return Turn(state=state, interrupted=True)
        return Turn(prompts=[self.prompts.prompt(spec, st, state, ctx, key=st.invalid)], state=state)

    def _enter_exact(
        self, spec: DialogSpec, state: dict[str, Any], st: StateSpec, ctx: PromptContext
    ) -> Turn:
        """Ask ``st`` even if its slot is filled (the resident chose to edit it)."""
        state["state"] = st.name
        turn = Turn(state=state)
        if st.private and ctx.in_group:
            turn.move_private = True
            turn.prompts.append(Prompt(self.words.get("appeal.moved_private")))
        turn.prompts.append(self.prompts.prompt(spec, st, state, ctx))
        return turn


def _slot_ctx(spec: DialogSpec, slot: str, ctx: PromptContext, *, explicit: bool = True) -> SlotContext:
    return SlotContext(
        options=spec.slots[slot].options,
        skip_words=spec.skip_words,
        saved_phone=ctx.saved_phone,
        explicit=explicit,
    )


def _interrupting(u: Understanding) -> bool:
    return u.intent.name in INTERRUPTING_INTENTS and u.intent.confidence >= INTERRUPT_CONFIDENCE


def _done(state: dict[str, Any], slot: str) -> bool:
    return bool(state["slots"].get(slot)) or slot in state["skipped"]


def _confirm_state(spec: DialogSpec) -> str:
    return next(s.name for s in spec.states.values() if s.confirm)


def _edit_target(words: Responses, spec: DialogSpec, text: str, b: str) -> str | None:
    if text.startswith("/edit "):
        name = text.removeprefix("/edit ").strip()
        return name if name in spec.slots else None
    for name in spec.slots:
        label = words.get(f"appeal.slot_names.{name}")
        if b in {label, f"改{label}", f"修改{label}"}:
            return name
    return None


__all__ = ["DialogEngine", "Prompt", "PromptContext", "Turn"]
