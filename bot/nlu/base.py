"""The contract every understanding backend fulfils (embedded, Rasa over HTTP, ...).

A backend takes the resident's raw text and returns scored intents and typed entities. Backends are
registered by name (see :mod:`bot.nlu.registry`), never selected by ``if`` chains in the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Intent(StrEnum):
    """What the resident wants. The fixed vocabulary shared by training data, backends and dialogs."""

    REPORT = "report"  # 报修/反映/投诉: something is wrong and should be handled
    ASK_CONTACT = "ask_contact"  # 这事该找谁 / 物业电话多少
    STATUS = "status"  # 我的诉求进度
    HUMAN = "human"  # 转人工 / 找工作人员
    EMERGENCY = "emergency"  # 着火、煤气味、有人受伤、被困电梯
    GREET = "greet"
    THANKS = "thanks"
    CANCEL = "cancel"  # 取消/算了/不报了
    OTHER = "other"


class EntityType(StrEnum):
    BUILDING = "building"  # 3栋 / 三号楼 -> "3"
    UNIT = "unit"  # 2单元 -> "2"
    ROOM = "room"  # 502室 -> "502"
    PLACE = "place"  # 地下车库 / 楼道 / 小区门口: a shared place
    PHONE = "phone"  # 13812345678
    APPEAL_ID = "appeal_id"  # HY-20261122-0001
    TIME = "time"  # 昨天晚上 / 三天了


@dataclass(frozen=True, slots=True)
class Entity:
    """A typed span. ``value`` is canonical (Arabic numerals, upper-case ids); ``text`` is the span as
    written in the normalized text; ``start``/``end`` index into the normalized text."""

    type: EntityType
    value: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class IntentScore:
    name: Intent
    confidence: float


@dataclass(frozen=True, slots=True)
class Understanding:
    """The result of parsing one message.

    ``text`` is the normalized text the backend worked on (see :func:`bot.nlu.normalize.normalize`);
    ``ranking`` is every intent the backend scored, best first, and starts with ``intent``.
    """

    text: str
    intent: IntentScore
    entities: tuple[Entity, ...] = ()
    ranking: tuple[IntentScore, ...] = field(default=())
    backend: str = ""

    def first(self, kind: EntityType) -> Entity | None:
        return next((e for e in self.entities if e.type is kind), None)

    def all(self, kind: EntityType) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.type is kind)


@runtime_checkable
class NLUBackend(Protocol):
    """An understanding backend.

    ``parse`` must never raise on odd input (empty, 20 KB, binary garbage, only emoji): it returns
    ``Intent.OTHER`` with low confidence instead. ``health`` returns ``None`` when ready, or a short
    reason why not (shown in ``/readyz``).
    """

    name: str

    async def parse(self, text: str) -> Understanding: ...

    async def health(self) -> str | None: ...
