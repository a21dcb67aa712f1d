"""Slot types: how a dialog turns a resident's message into a value, and a value back into words.

Each type is registered by the name used in ``dialogs/*.yml`` (``type: place``). A type answers three
questions: can the first message already fill me (``prefill``)? does this answer fill me (``parse``)? how
do I show my value (``display``, masked when the reply goes to a group)?
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.dialog.spec import Responses
from bot.message import AttachmentKind, IncomingMessage
from bot.nlu.base import EntityType, Intent, Understanding
from bot.nlu.entities import NUM, extract_entities
from bot.nlu.normalize import normalize, to_simplified


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


SKIP = _Skip()  # an optional slot the resident chose to leave empty


@dataclass(frozen=True, slots=True)
class Parsed:
    """The outcome of parsing one answer: ``ok`` with ``value`` (possibly SKIP), or not ok.

    ``strong`` says the value came from unambiguous evidence (an entity, an attachment, a button), as
    opposed to lenient free text; an interrupting question beats lenient free text but not strong values.
    """

    ok: bool
    value: Any = None
    strong: bool = False


NOT_PARSED = Parsed(ok=False)


@dataclass(frozen=True, slots=True)
class SlotContext:
    """What a slot type may know beyond the message."""

    options: dict[str, Any]
    skip_words: frozenset[str]
    saved_phone: str | None = None
    explicit: bool = True  # the resident is answering this slot's own question


class SlotType(Protocol):
    def prefill(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Any | None: ...

    def parse(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Parsed: ...

    def display(self, value: Any, *, private: bool, words: Responses) -> str:
        """``value`` in words; only called for filled slots (the engine words empty ones)."""
        ...


SLOT_TYPES: dict[str, SlotType] = {}


def slot_type(name: str) -> Callable[[type[Any]], type[Any]]:
    def register(cls: type[Any]) -> type[Any]:
        SLOT_TYPES[name] = cls()
        return cls

    return register


_PUNCT = re.compile(r"[\s,.!?;:、，。！？；：~～…\-—_()（）\[\]【】\"'“”‘’]+")


def bare(text: str) -> str:
    """Normalized text without punctuation or spaces: for matching whole-message words."""
    return _PUNCT.sub("", normalize(text))


def is_skip(u: Understanding, message: IncomingMessage, ctx: SlotContext) -> bool:
    b = bare(message.text).removesuffix("了")
    if message.text.strip() == "/skip" or b in ctx.skip_words:
        return True
    # "没有照片" / "不留电话" / "不用拍": a short refusal of what was just asked for.
    return len(b) <= 6 and b.startswith(_SKIP_PREFIXES)


_SKIP_PREFIXES = ("不留", "没有", "没", "不用", "不需要", "不拍", "不方便", "跳过", "无")


# Phrases that only say "I want to report"; what remains after removing them is the actual problem.
_TRIGGERS = re.compile(
    r"^(?:/report|你好|您好|请问|麻烦|帮忙|帮我|我想|我要|我需|需要|想要|要|给|请|一下|反映|反应|报修|报个修|"
    r"登记|投诉|举报|问题|个|一个|下)+"
)
_CJK_OR_ALNUM = re.compile(r"[\u4e00-\u9fff0-9a-z]")


@slot_type("description")
class DescriptionSlot:
    """What happened, in the resident's own words (kept as written, minus @-mentions)."""

    @staticmethod
    def _content(message: IncomingMessage) -> str:
        return _TRIGGERS.sub("", bare(message.text))

    def prefill(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Any | None:
        # A first message is a description when, without its address ("3栋2单元502"), it still says
        # enough, and something besides entities: "地下车库积水了" is; "3栋2单元" or "地下车库" is not.
        address = {
            EntityType.BUILDING,
            EntityType.UNIT,
            EntityType.ROOM,
            EntityType.PHONE,
            EntityType.APPEAL_ID,
        }
        without_address = _TRIGGERS.sub("", _PUNCT.sub("", _cut(u.text, u, address)))
        without_entities = _TRIGGERS.sub("", _PUNCT.sub("", _cut(u.text, u, None)))
        if (
            len(_CJK_OR_ALNUM.findall(without_address)) >= int(ctx.options.get("min_chars", 4))
            and len(_CJK_OR_ALNUM.findall(without_entities)) >= 2
        ):
            return _clean_original(message.text)
        return None

    def parse(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Parsed:
        content = self._content(message)
        if len(_CJK_OR_ALNUM.findall(content)) >= int(ctx.options.get("min_chars", 4)):
            return Parsed(ok=True, value=_clean_original(message.text))
        if message.attachment(AttachmentKind.VOICE) and content:
            return Parsed(ok=True, value=_clean_original(message.text))
        return NOT_PARSED

    def display(self, value: Any, *, private: bool, words: Responses) -> str:
        text = str(value) if private else mask_personal(str(value))
        return text if len(text) <= 60 else text[:58] + "…"


_MENTION = re.compile(r"@\S+?(?:\s|\u2005|$)")


def _cut(text: str, u: Understanding, kinds: set[EntityType] | None) -> str:
    """``text`` with the spans of entities of ``kinds`` (all but time, when None) removed."""
    out, pos = [], 0
    for e in sorted(u.entities, key=lambda e: e.start):
        if (kinds is None and e.type is not EntityType.TIME) or (kinds is not None and e.type in kinds):
            out.append(text[pos : e.start])
            pos = max(pos, e.end)
    out.append(text[pos:])
    return _LONE_ROOM.sub("***", "".join(out))


def _clean_original(text: str) -> str:
    """The resident's words for the record: without @-mentions and surplus whitespace."""
    return re.sub(r"\s+", " ", _MENTION.sub(" ", text)).strip()[:1000]


@slot_type("place")
class PlaceSlot:
    """Where: building/unit/room in the estate, or a shared place ("地下车库"), or a shared location."""

    @staticmethod
    def _from_entities(u: Understanding) -> dict[str, Any] | None:
        value: dict[str, Any] = {}
        for kind in (EntityType.BUILDING, EntityType.UNIT, EntityType.ROOM, EntityType.PLACE):
            ent = u.first(kind)
            if ent is not None:
                value[kind.value] = ent.value
        return value or None

    def prefill(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Any | None:
        loc = message.attachment(AttachmentKind.LOCATION)
        if loc is not None:
            return _location_value(loc.latitude, loc.longitude, loc.label)
        return self._from_entities(u)

    def parse(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Parsed:
        found = self.prefill(u, message, ctx)
        if found:
            return Parsed(ok=True, value=found, strong=True)
        text = _clean_original(message.text)
        b = bare(text)
        if ctx.explicit and 2 <= len(b) <= 40 and not b.startswith("/") and b not in ctx.skip_words:
            return Parsed(ok=True, value={"text": text})
        return NOT_PARSED

    def display(self, value: Any, *, private: bool, words: Responses) -> str:
        return describe_place(value, private=private)


def _location_value(lat: float | None, lng: float | None, label: str | None) -> dict[str, Any]:
    return {"text": label or "共享的位置", "location": {"latitude": lat, "longitude": lng}}


def describe_place(value: dict[str, Any], *, private: bool) -> str:
    """ "3栋2单元502室" in private; the room is masked when the text goes to a group."""
    parts = []
    if b := value.get("building"):
        parts.append(f"{b}栋")
    if u := value.get("unit"):
        parts.append(f"{u}单元")
    if r := value.get("room"):
        parts.append(f"{r}室" if private else "***室")
    text = "".join(parts)
    if p := value.get("place"):
        text = f"{text} {p}".strip()
    if not text:
        text = str(value.get("text", ""))
    return text


@slot_type("photo")
class PhotoSlot:
    def prefill(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Any | None:
        photos = [a.to_dict() for a in message.attachments if a.kind is AttachmentKind.PHOTO]
        return photos or None

    def parse(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Parsed:
        photos = self.prefill(u, message, ctx)
        if photos:
            return Parsed(ok=True, value=photos, strong=True)
        if is_skip(u, message, ctx):
            return Parsed(ok=True, value=SKIP, strong=True)
        return NOT_PARSED

    def display(self, value: Any, *, private: bool, words: Responses) -> str:
        return words.get("appeal.photo_count", count=len(value))


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else phone[:-4] + "****"


def _fold(ch: str) -> str:
    # Full-width to half-width, traditional to simplified (棟 → 栋) and lower case, one character for
    # one, so that entity offsets found in the folded text are offsets into the original text too.
    folded = unicodedata.normalize("NFKC", ch).lower()
    if len(folded) != 1:
        return ch
    simplified = to_simplified(folded) if folded > "\u2e7f" else folded
    return simplified if len(simplified) == 1 else folded


_ROOM_NUMBER = re.compile(rf"{NUM}")
# A flat named without its building: "我住402", "我家1502", "楼上702天天吵", "住12楼1201", "502房",
# "1201的业主", "502家漏水", "师傅10分钟后到502", "找502".
_FLAT_BEFORE = r"(?:(?<=住)|(?<=住在)|(?<=家)|(?<=楼上)|(?<=楼下)|(?<=对门)|(?<=隔壁)|(?<=楼))"
_MOVE_BEFORE = r"(?:(?<=到)|(?<=去)|(?<=来)|(?<=找))"
_PERSON_AFTER = r"的(?:业主|住户|邻居|老人|人家|租户|房东|阿姨|大爷|叔|婶|奶奶|爷爷|小孩|孩子|那家|[\u4e00-\u9fff](?:阿姨|大爷|先生|女士|师傅|叔|婶|姐|哥))"
_LONE_ROOM = re.compile(
    rf"{_FLAT_BEFORE}\d{{3,4}}(?![\d年月日号点时分秒元块岁个次])"
    rf"|{_MOVE_BEFORE}\d{{3,4}}(?![\d年月日号点时分秒元块岁个次天])"
    rf"|(?<![\d.])\d{{3,4}}(?=室|房|号房|户|家|{_PERSON_AFTER})"
)


# A person's full name: neighbours say 王阿姨 (a family name and a title, which names nobody), but
# 王秀英阿姨 or 名叫王秀英 names someone. The given name is masked, the family name and title stay.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_NAMED = re.compile(
    rf"(?:(?<=叫)|(?<=名叫)|(?<=姓名)|(?<=姓名：)|(?<=姓名:))([{_SURNAMES}])([\u4e00-\u9fff]{{1,2}})(?![\u4e00-\u9fff])"
    rf"|([{_SURNAMES}])([\u4e00-\u9fff]{{1,2}})(?=阿姨|大爷|先生|女士|奶奶|爷爷|叔叔|阿婆|大妈|大伯)"
)


# Identity-card numbers (18 characters, the last may be X) and mainland licence plates (粤B12345, 粤B·D12345).
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_PLATE = re.compile(
    r"([京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领])([A-Za-z])[·・.\s]?([A-Za-z0-9]{5,6})(?![A-Za-z0-9])"
)


def mask_personal(text: str) -> str:
    """``text`` (a resident's own words) with phone, room, ID-card and licence-plate numbers masked, for
    wherever it is shown to anyone but the resident who wrote it: a group, a neighbour who joined the
    appeal. A phone in a description is often someone else's ("楼上邻居电话…")."""
    text = _ID_NUMBER.sub(lambda m: f"{m.group(1)}********{m.group(2)[-1]}", text)
    text = _PLATE.sub(lambda m: f"{m.group(1)}{m.group(2)}***{m.group(3)[-2:]}", text)
    folded = "".join(_fold(ch) for ch in text)
    out, pos = [], 0
    for e in extract_entities(folded):
        if e.type is EntityType.PHONE:
            shown = mask_phone(re.sub(r"\D", "", e.value))
        elif e.type is EntityType.ROOM:
            shown = _ROOM_NUMBER.sub("***", text[e.start : e.end], count=1)
        else:
            continue
        out.append(text[pos : e.start])
        out.append(shown)
        pos = e.end
    out.append(text[pos:])
    masked = _LONE_ROOM.sub("***", "".join(out))
    return _NAMED.sub(_mask_given_name, masked)


def _mask_given_name(m: re.Match[str]) -> str:
    surname, given = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if given in _TITLES:  # 叫王阿姨: a family name and a title
        return m.group(0)
    return surname + "*" * len(given)


_TITLES = frozenset({"阿姨", "大爷", "先生", "女士", "奶奶", "爷爷", "叔叔", "阿婆", "大妈", "大伯", "师傅"})


@slot_type("phone")
class PhoneSlot:
    """The resident's own contact number. Only an answer to the contact question fills it: a phone in the
    first message or in another answer ("楼上邻居电话138…一直漏水") is part of what happened, often
    someone else's number, and stays in the description."""

    def prefill(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Any | None:
        return None

    def parse(self, u: Understanding, message: IncomingMessage, ctx: SlotContext) -> Parsed:
        ent = u.first(EntityType.PHONE) if ctx.explicit else None
        if ent is not None:
            return Parsed(ok=True, value=ent.value, strong=True)
        if message.text.strip() == "/use_saved" and ctx.saved_phone:
            return Parsed(ok=True, value=ctx.saved_phone, strong=True)
        if is_skip(u, message, ctx):
            return Parsed(ok=True, value=SKIP, strong=True)
        return NOT_PARSED

    def display(self, value: Any, *, private: bool, words: Responses) -> str:
        return str(value) if private else mask_phone(str(value))


# Intents that, when the answer does not fit the form, mean "the resident asked something else".
INTERRUPTING_INTENTS = frozenset(
    {Intent.ASK_CONTACT, Intent.STATUS, Intent.HUMAN, Intent.GREET, Intent.THANKS}
)
