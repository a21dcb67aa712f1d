"""Building leaders (楼长) relay their neighbours' problems: a first-class path to an appeal.

A leader writes to the bot, in a private chat or (addressing it) in a group:

- "帮3栋502王阿姨反映：厨房漏水" (also 替/代 … 反映/报修/登记/投诉/上报), or
- a neighbour's message passed on: WeChat's quote format ``「王阿姨：厨房漏水」\\n- - - -\\n帮她反映一下``,
  or ``[转发] 王阿姨：厨房漏水`` (how connectors render a forwarded message).

The bot shows what it understood (privately: it contains a room number) and creates the appeal when
the leader confirms. The appeal records the neighbour as the reporter (a person without a chat identity)
and the leader as ``relayed_by``, so status updates reach the leader. Leaders relay only for the
buildings they look after, and ``本楼诉求`` (/appeals) lists those buildings' appeals.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AppealStatus, Community, Person
from bot.db.repository import ConversationRef, NewAppeal, Repository
from bot.db.repository.conversation_records import ConversationRecords
from bot.dialog.slots import mask_personal
from bot.handoff.desk import HandoffDesk
from bot.handoff.model import TurnOutput
from bot.handoff.summary import place_text
from bot.message import Button, IncomingMessage
from bot.nlu.base import EntityType
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import normalize, to_simplified
from bot.roles import leader_buildings, person_by_identity
from bot.state import Keys

_VERBS = r"(?:反映|反应|报修|登记|投诉|上报|报一下|说一下)"
RELAY_RE = re.compile(
    r"^(?:请|麻烦)?(?:帮|替|代)(?:忙)?(?P<who>[^:：,，。!！?？\s]{1,30}?)"
    + _VERBS
    + r"(?:一下)?(?:个|下)?(?:问题)?"
    r"(?:[:：,，。!！\s]+|$)(?P<what>.*)$",
    re.S,
)
QUOTE_RE = re.compile(r"^「(?P<name>[^:：」]{1,20})[:：](?P<what>[^」]+)」\s*(?:-\s*){3,}(?P<note>.*)$", re.S)
FORWARD_RE = re.compile(
    r"^(?:\[转发\]|【转发】|转发自|转自)\s*(?P<name>[^:：\n]{1,20})[:：]\s*(?P<what>.+)$", re.S
)
_QUOTE_ASKS = re.compile(r"帮|反映|报修|登记|上报|处理")
_SELF = {"我", "我们", "俺", "咱", "咱们", "我家", "自己"}
_LEADING_MENTIONS = re.compile(r"^(?:@\S+\s*)+")
_TRIM = " \t\r\n:：,，。!！"
# Place words that are inside a building (the leader's), unlike 地下车库 or 小区东门.
INSIDE_A_BUILDING = set("楼道 楼梯 楼梯间 电梯 走廊 单元门 楼顶 天台 门厅 大堂 消防通道".split())
LIST_WORDS = {"/appeals", "本楼诉求", "楼栋诉求", "我楼栋的诉求"}
CONFIRM = "/relay ok"
CANCEL = "/relay cancel"
DRAFT_TTL_S = 1800
LIST_LIMIT = 10


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """What a leader's message says about the neighbour and the problem."""

    resident: str
    description: str
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    place: str | None = None


def parse_relay(text: str) -> RelayRequest | None:
    """The relay in ``text``, or None when it is not one ("帮我反映" is the resident's own report)."""
    text = to_simplified(_LEADING_MENTIONS.sub("", text.strip()).strip())  # 幫…反映 as 帮…反映
    who = what = ""
    if match := RELAY_RE.match(text):
        who, what = match.group("who").strip(), match.group("what").strip(_TRIM)
        if who in _SELF:
            return None
    elif (match := QUOTE_RE.match(text)) and _QUOTE_ASKS.search(match.group("note")):
        who, what = match.group("name").strip(), f"{match.group('what')} {match.group('note')}".strip(_TRIM)
        what = match.group("what").strip(_TRIM) or what
    elif match := FORWARD_RE.match(text):
        who, what = match.group("name").strip(), match.group("what").strip(_TRIM)
    else:
        return None
    found: dict[EntityType, str] = {}
    for part in (what, who):  # the neighbour's own words win over the leader's framing
        for entity in extract_entities(normalize(part)):
            found.setdefault(entity.type, entity.value)
    name = normalize(who)
    for entity in extract_entities(name):
        name = name.replace(entity.text, " ")
    name = re.sub(r"\s+", "", name).strip(_TRIM) or "居民"
    for pronoun in ("她", "他", "他们", "她们"):
        if name == pronoun:
            name = "居民"
    return RelayRequest(
        resident=name[:30],
        description=what[:500],
        building=found.get(EntityType.BUILDING),
        unit=found.get(EntityType.UNIT),
        room=found.get(EntityType.ROOM),
        place=found.get(EntityType.PLACE),
    )


class Relay:
    def __init__(self, desk: HandoffDesk) -> None:
        self.desk = desk
        self.words = desk.words
        self.settings = desk.settings
        self._tz = ZoneInfo(desk.settings.timezone)
        self.filing = desk.filing

    async def handle(
        self, session: AsyncSession, ref: ConversationRef, message: IncomingMessage, out: TurnOutput
    ) -> bool:
        """A relay, its confirmation, or a leader's list of their buildings' appeals; else False."""
        text = _LEADING_MENTIONS.sub("", message.text.strip()).strip()
        if text in (CONFIRM, CANCEL):
            await self._confirm(session, ref, message, out, confirmed=text == CONFIRM)
            return True
        if text in LIST_WORDS:
            await self._list(session, message, out)
            return True
        request = parse_relay(text)
        if request is None:
            return False
        leader = await person_by_identity(session, message.platform.value, message.sender_id)
        buildings = await leader_buildings(session, leader.id) if leader else {}
        if leader is None or not buildings:
            return False  # not a leader: an ordinary message ("帮邻居问一下…"), the bot's turn
        await self._draft(session, ref, message, request, buildings, out)
        return True

    async def _draft(
        self,
        session: AsyncSession,
        ref: ConversationRef,
        message: IncomingMessage,
        request: RelayRequest,
        buildings: dict[int, list[str]],
        out: TurnOutput,
    ) -> None:
        community_id = ref.community_id if ref.community_id in buildings else next(iter(buildings))
        mine = buildings[community_id]
        building = request.building
        if building is None and len(mine) == 1 and (not request.place or request.place in INSIDE_A_BUILDING):
            building = mine[0]  # a leader of one building relays for that building
        if not request.description or len(request.description) < 2:
            out.say(self.words.get("relay.need_what"))
            return
        if building is None and not request.place:
            out.say(self.words.get("relay.need_building"))
            return
        if building is not None and building not in mine:
            out.say(
                self.words.get(
                    "relay.not_your_building", buildings="、".join(f"{b}栋" for b in mine), building=building
                )
            )
            return
        community = await session.get(Community, community_id)
        assert community is not None
        answer = (
            self.desk.kb.lookup(normalize(request.description), community.code)
            if _has_profile(self.desk, community.code)
            else None
        )
        draft: dict[str, Any] = {
            "draft_key": f"relay:{uuid.uuid4().hex}",
            "community_id": community_id,
            "community_code": community.code,
            "resident": request.resident,
            "description": request.description,
            "building": building,
            "unit": request.unit if building else None,
            "room": request.room if building else None,
            "place": request.place,
            "origin": {
                "platform": message.platform.value,
                "chat_id": message.chat_id,
                "chat_type": message.chat_type.value,
            },
            "kb": answer.matter_id if answer else None,
            "category": answer.category if answer else None,
            "party": answer.first_contact.party if answer else None,
            "party_sub": answer.first_contact.sub if answer else None,
            "party_name": answer.first_contact.name if answer else None,
            "urgent": bool(answer and answer.emergency),
        }
        await self.desk.redis.set(_draft_key(message), json.dumps(draft, ensure_ascii=False), ex=DRAFT_TTL_S)
        party_line = (
            self.words.get("appeal.summary_party", party=draft["party_name"]) if draft["party_name"] else ""
        )
        text = self.words.get(
            "relay.confirm",
            resident=request.resident,
            place=_place(draft),
            description=request.description,
            party_line=party_line,
        )
        buttons = (
            Button(self.words.get("relay.button_confirm"), CONFIRM),
            Button(self.words.get("relay.button_cancel"), CANCEL),
        )
        if message.is_group:
            out.say(self.words.get("relay.in_private", name=message.sender_name or "您"))
        out.say(text, buttons, private=message.is_group)

    async def _confirm(
        self,
        session: AsyncSession,
        ref: ConversationRef,
        message: IncomingMessage,
        out: TurnOutput,
        *,
        confirmed: bool,
    ) -> None:
        key = _draft_key(message)
        raw = await self.desk.redis.get(key)
        if raw is None:
            out.say(self.words.get("relay.expired"))
            return
        await self.desk.redis.delete(key)
        if not confirmed:
            out.say(self.words.get("relay.cancelled"))
            return
        draft = json.loads(raw)
        leader = await person_by_identity(session, message.platform.value, message.sender_id)
        buildings = await leader_buildings(session, leader.id) if leader else {}
        mine = buildings.get(int(draft["community_id"]), [])
        if leader is None or not mine or (draft["building"] and draft["building"] not in mine):
            out.say(self.words.get("relay.not_leader"))  # the role was taken away in the meantime
            return
        resident = Person(display_name=str(draft["resident"]))
        session.add(resident)
        await session.flush()
        origin = draft["origin"]
        new = NewAppeal(
            draft_key=str(draft["draft_key"]),
            description=str(draft["description"]),
            origin_platform=str(origin["platform"]),
            origin_chat=str(origin["chat_id"]),
            origin_chat_type=str(origin["chat_type"]),
            building=draft["building"],
            unit=draft["unit"],
            room=draft["room"],
            place=draft["place"],
            category=draft["category"],
            kb_matter_id=draft["kb"],
            responsible_party=draft["party"],
            responsible_sub=draft["party_sub"],
            urgent=bool(draft["urgent"]),
            relayed_by_id=leader.id,
        )
        # The appeal is the neighbour's: reporter = the neighbour, in the leader's community.
        appeal_ref = replace(
            ref,
            person_id=resident.id,
            community_id=int(draft["community_id"]),
            community_code=str(draft["community_code"]),
        )
        appeal, _created = await self.filing.file(
            Repository(session),
            new,
            appeal_ref,
            source="relay",
            actor=f"leader:{leader.id}",
            note=f"楼长{message.sender_name or ''}代{draft['resident']}反映",
        )
        out.say(
            self.words.get(
                "relay.created", public_id=appeal.public_id, resident=draft["resident"], place=_place(draft)
            )
        )

    async def _list(self, session: AsyncSession, message: IncomingMessage, out: TurnOutput) -> None:
        leader = await person_by_identity(session, message.platform.value, message.sender_id)
        buildings = await leader_buildings(session, leader.id) if leader else {}
        if leader is None or not buildings:
            out.say(self.words.get("relay.not_leader"))
            return
        appeals = await ConversationRecords(session).appeals_in_buildings(buildings, LIST_LIMIT)
        names = "、".join(f"{b}栋" for mine in buildings.values() for b in mine)
        private = message.is_group
        if private:
            out.say(self.words.get("relay.list_in_private", name=message.sender_name or "您"))
        if not appeals:
            out.say(self.words.get("relay.list_none", buildings=names), private=private)
            return
        lines = [self.words.get("relay.list_header", buildings=names)]
        for appeal in appeals:
            lines.append(
                self.words.get(
                    "relay.list_item",
                    public_id=appeal.public_id,
                    status=_status_label(appeal.status),
                    # No room numbers: the list is about the building, not who lives where.
                    place=place_text(appeal.building, appeal.unit, None, appeal.place),
                    summary=mask_personal(appeal.description)[:24],
                    date=appeal.created_at.astimezone(self._tz).strftime("%m-%d"),
                    relayed=self.words.get("relay.list_relayed") if appeal.relayed_by_id == leader.id else "",
                )
            )
        out.say("\n".join(lines), private=private)


def _draft_key(message: IncomingMessage) -> str:
    # Per leader, not per chat: a relay drafted in a group is confirmed in the private chat.
    return Keys.relay_draft(message.platform, message.sender_id)


def _place(draft: dict[str, Any]) -> str:
    return (
        place_text(draft.get("building"), draft.get("unit"), draft.get("room"), draft.get("place"))
        or "未说明"
    )


def _status_label(status: str) -> str:
    try:
        return AppealStatus(status).label
    except ValueError:
        return status


def _has_profile(desk: HandoffDesk, code: str) -> bool:
    try:
        desk.kb.community(code)
    except KeyError:
        return False
    return True
