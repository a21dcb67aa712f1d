"""What the follow-up of an appeal answers in a turn it handles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.dialog.engine import Prompt


@dataclass(slots=True)
class Handled:
    """The turn's answer, and the resident's dialog state after it."""

    prompts: list[Prompt] = field(default_factory=list)
    state: dict[str, Any] | None = None
