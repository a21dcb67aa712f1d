"""Loading guided dialogs and reply wording from ``dialogs/*.yml``, with their references checked.

The YAML is the product's wording and flow; this module turns it into frozen dataclasses and fails at
start-up (not in the middle of a resident's form) when a state points to a missing state, prompt or slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

import dialogs

# The YAML ships as package data of the top-level ``dialogs`` package, so this works from any directory.
DIALOGS_DIR = Path(dialogs.__file__).resolve().parent


class DialogSpecError(ValueError):
    """A dialog file is inconsistent; the message names the file and the offending key."""


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    title: str
    payload: str
    when: str | None = None  # a context flag that must be truthy for the button to show


@dataclass(frozen=True, slots=True)
class SlotSpec:
    name: str
    type: str
    optional: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateSpec:
    name: str
    prompt: str
    invalid: str
    ask: str | None = None  # the slot this state fills
    confirm: bool = False
    private: bool = False
    next: str | None = None
    buttons: tuple[ButtonSpec, ...] = ()
    edit_prompt: str | None = None
    edit_buttons: tuple[ButtonSpec, ...] = ()
    on_confirm: str | None = None


@dataclass(frozen=True, slots=True)
class DialogSpec:
    name: str
    start: str
    slots: dict[str, SlotSpec]
    states: dict[str, StateSpec]
    confirm_words: frozenset[str]
    skip_words: frozenset[str]

    def state(self, name: str) -> StateSpec:
        return self.states[name]


@dataclass(frozen=True, slots=True)
class ConversationRules:
    cancel_words: frozenset[str]
    correction_prefixes: tuple[str, ...]
    commands: dict[str, str]
    command_words: dict[str, str]
    command_prefixes: tuple[tuple[str, str], ...] = ()
    """Words that give a command when followed by its argument ("撤回 HY-…"), longest first."""


def _buttons(raw: list[dict[str, Any]] | None) -> tuple[ButtonSpec, ...]:
    return tuple(ButtonSpec(str(b["title"]), str(b["payload"]), b.get("when")) for b in raw or [])


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


class Responses:
    """Reply wording by dotted key (``appeal.ask_place``), filled with ``str.format`` placeholders."""

    def __init__(self, data: dict[str, Any], source: str = "responses.yml") -> None:
        self._flat: dict[str, Any] = {}
        self._source = source

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                self._flat[prefix] = node

        walk("", data)

    def __contains__(self, key: str) -> bool:
        return key in self._flat

    def get(self, key: str, **values: Any) -> str:
        try:
            template = self._flat[key]
        except KeyError:
            raise KeyError(f"{self._source}: no reply wording under {key!r}") from None
        return str(template).format_map(_Defaulting(values)) if values else str(template)

    def raw(self, key: str) -> Any:
        return self._flat[key]


class _Defaulting(dict[str, Any]):
    """Leaves an unknown placeholder visible rather than crashing a resident's turn."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def load_dialog(path: Path, responses: Responses) -> DialogSpec:
    data = _load_yaml(path)
    where = path.name
    try:
        slots = {
            name: SlotSpec(name, str(s["type"]), bool(s.get("optional", False)), {k: v for k, v in s.items()})
            for name, s in data["slots"].items()
        }
        states: dict[str, StateSpec] = {}
        for name, s in data["states"].items():
            states[name] = StateSpec(
                name=name,
                prompt=str(s["prompt"]),
                invalid=str(s.get("invalid", s["prompt"])),
                ask=s.get("ask"),
                confirm=bool(s.get("confirm", False)),
                private=bool(s.get("private", False)),
                next=s.get("next"),
                buttons=_buttons(s.get("buttons")),
                edit_prompt=s.get("edit_prompt"),
                edit_buttons=_buttons(s.get("edit_buttons")),
                on_confirm=s.get("on_confirm"),
            )
        spec = DialogSpec(
            name=str(data["name"]),
            start=str(data["start"]),
            slots=slots,
            states=states,
            confirm_words=frozenset(str(w) for w in data.get("confirm_words", [])),
            skip_words=frozenset(str(w) for w in data.get("skip_words", [])),
        )
    except (KeyError, TypeError) as exc:
        raise DialogSpecError(f"{where}: missing or malformed key {exc}") from exc
    _check(spec, responses, where)
    return spec


def _check(spec: DialogSpec, responses: Responses, where: str) -> None:
    if spec.start not in spec.states:
        raise DialogSpecError(f"{where}: start state {spec.start!r} is not defined")
    for st in spec.states.values():
        for key in (st.prompt, st.invalid, st.edit_prompt):
            if key is not None and key not in responses:
                raise DialogSpecError(f"{where}: state {st.name!r} uses unknown reply {key!r}")
        if st.next is not None and st.next not in spec.states:
            raise DialogSpecError(f"{where}: state {st.name!r} goes to unknown state {st.next!r}")
        if st.ask is not None and st.ask not in spec.slots:
            raise DialogSpecError(f"{where}: state {st.name!r} asks unknown slot {st.ask!r}")
        if st.ask is None and not st.confirm:
            raise DialogSpecError(f"{where}: state {st.name!r} neither asks a slot nor confirms")


@dataclass(frozen=True, slots=True)
class DialogBundle:
    responses: Responses
    rules: ConversationRules
    dialogs: dict[str, DialogSpec]

    def step_buttons(self) -> frozenset[str]:
        """The command-like payloads of the dialogs' buttons (``/confirm``, ``/skip``, ``/edit place``…)
        that are not conversation commands: outside a running dialog they are a finished step's button
        pressed again. Plain-word payloads ("电梯") are left out: typed, they mean something else."""
        payloads = {
            b.payload
            for spec in self.dialogs.values()
            for st in spec.states.values()
            for b in (*st.buttons, *st.edit_buttons)
            if b.payload.startswith("/")
        }
        return frozenset(p for p in payloads if p.split(" ", 1)[0] not in self.rules.commands)


@cache
def load_bundle(root: Path = DIALOGS_DIR) -> DialogBundle:
    """All dialogs, the conversation rules and the wording. Cached: the files are read once."""
    responses = Responses(_load_yaml(root / "responses.yml"))
    rules_raw = _load_yaml(root / "dialogs.yml")
    rules = ConversationRules(
        cancel_words=frozenset(str(w) for w in rules_raw["cancel_words"]),
        correction_prefixes=tuple(
            sorted((str(w) for w in rules_raw["correction_prefixes"]), key=len, reverse=True)
        ),
        commands={str(k): str(v) for k, v in rules_raw["commands"].items()},
        command_words={str(k): str(v) for k, v in rules_raw["command_words"].items()},
        command_prefixes=tuple(
            sorted(
                ((str(k), str(v)) for k, v in (rules_raw.get("command_prefixes") or {}).items()),
                key=lambda kv: len(kv[0]),
                reverse=True,
            )
        ),
    )
    dialogs = {}
    for path in sorted(root.glob("*.yml")):
        if path.name in {"responses.yml", "dialogs.yml"}:
            continue
        spec = load_dialog(path, responses)
        dialogs[spec.name] = spec
    return DialogBundle(responses=responses, rules=rules, dialogs=dialogs)
