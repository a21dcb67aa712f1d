"""Staff commands in chat, on any platform: for staff away from a desk.

The same operations as the console, typed in a chat with the bot — a Telegram or WeCom staff group bound
with ``/staffchat``, or a private chat (a WeCom app is one) — by someone whose chat identity is staff of
the conversation's community:

    /queue                 waiting and active conversations (队列)
    /take 12               take conversation 12 over; the bot goes quiet (接入 12)
    /reply 12 内容          answer the resident, signed with your name; ``/reply 12 #2`` sends canned reply 2
    /note 12 内容           internal note, never sent (备注 12 …)
    /release 12            hand back to the bot (释放 12)
    /file 12 [描述]         file an appeal for the resident (登记 12 …): the description given, else the
                           resident's half-finished form, else their latest messages
    /canned                the community's canned replies (快捷回复)
    /staffchat [社区代码]    make this group the community's staff chat
    /join ABCD-EFGH        redeem an invite code (private chat only; 邀请码 …)

Authorization is checked before anything is looked up: to anyone else, every one of these answers the
same "staff only" line, so a conversation number reveals nothing.
"""

from __future__ import annotations

import re
from datetime import tzinfo
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Community, Conversation, HandoffStatus, Role
from bot.db.repository import ConversationRef, Repository
from bot.db.repository.conversation_records import ConversationRecords
from bot.handoff.desk import HandoffDesk
from bot.handoff.model import HandoffError, TurnOutput
from bot.handoff.notices import STAFF_CHAT
from bot.message import IncomingMessage
from bot.roles import (
    audit,
    community_by_code,
    format_invite,
    normalize_invite,
    person_by_identity,
    redeem_invite,
    revoke_invite,
    staff_community_ids,
)
from bot.state import Keys

log = structlog.get_logger(__name__)

SLASH = {
    "/queue": "queue",
    "/take": "take",
    "/reply": "reply",
    "/r": "reply",
    "/note": "note",
    "/release": "release",
    "/file": "file",
    "/canned": "canned",
    "/staffchat": "staffchat",
    "/join": "join",
    "/help": "help",
}
# Chinese words act as commands only in these exact shapes, so ordinary chatter never triggers them.
WORDS_WITH_ID = {
    "接入": "take",
    "接管": "take",
    "回复": "reply",
    "备注": "note",
    "释放": "release",
    "登记": "file",
}
# "登记 502 厨房漏水" from a resident is their own report: these words are staff commands only for staff.
STAFF_ONLY_WORDS = frozenset({"登记"})
WORDS_ALONE = {"队列": "queue", "排队情况": "queue", "快捷回复": "canned", "设为工作群": "staffchat"}
INVITE_WORDS = ("邀请码", "加入")

_LEADING_MENTIONS = re.compile(r"^(?:@\S+\s*)+")
_WITH_ID = re.compile(r"^#?(\d{1,12})(?:\s+(.*))?$", re.S)
INVITE_FAILURES_PER_HOUR = 5


class StaffCommands:
    def __init__(self, desk: HandoffDesk) -> None:
        self.desk = desk
        self.words = desk.words
        names = sorted(desk.settings.bot_names, key=len, reverse=True)
        self._bot_name = re.compile(r"^(?:" + "|".join(re.escape(n) for n in names) + r")[\s,，:：]*")

    def parse(self, text: str) -> tuple[str, str] | None:
        """``(command, argument)`` when ``text`` is one of the commands above, else None."""
        parsed = self._parse(text)
        return None if parsed is None else parsed[:2]

    def _parse(self, text: str) -> tuple[str, str, bool] | None:
        """:meth:`parse`, and whether the command was given by one of :data:`STAFF_ONLY_WORDS`."""
        text = self._bot_name.sub("", _LEADING_MENTIONS.sub("", text.strip())).strip()
        if not text:
            return None
        if text.startswith("/"):
            head, _, arg = text.partition(" ")
            head = head.split("@", 1)[0].lower()  # Telegram's /take@huiyin_bot in groups
            name = SLASH.get(head)
            return (name, arg.strip(), False) if name else None
        for word, name in WORDS_WITH_ID.items():
            if text.startswith(word):
                rest = text[len(word) :].strip()
                if _WITH_ID.match(rest):
                    return name, rest, word in STAFF_ONLY_WORDS
        if text in WORDS_ALONE:
            return WORDS_ALONE[text], "", False
        for word in INVITE_WORDS:
            if text.startswith(word) and normalize_invite(text[len(word) :]):
                return "join", text[len(word) :].strip(), False
        if re.fullmatch(r"[A-Za-z0-9]{4}-[A-Za-z0-9]{4}", text) and normalize_invite(text):
            return "join", text, False  # a code pasted on its own, as it was handed out
        return None

    async def handle(
        self, session: AsyncSession, ref: ConversationRef, message: IncomingMessage, out: TurnOutput
    ) -> bool:
        """Carry out a staff command or an invite; False when the message is not one of them."""
        parsed = self._parse(message.text)
        if parsed is None:
            return False
        command, arg, staff_only_word = parsed
        if command == "join":
            await self._join(session, message, arg, out)
            return True
        person = await person_by_identity(session, message.platform.value, message.sender_id)
        communities = await staff_community_ids(session, person.id) if person else []
        if command == "help":
            if not communities:
                return False  # the resident's /help: the bot's own
            out.say(f"{self.words.get('staff.usage')}\n\n{self.words.get('case.usage')}")
            return True
        if person is None or not communities:
            if staff_only_word:
                return False  # a resident's own words: the bot's turn reads them
            out.say(self.words.get("staff.not_allowed"))
            return True
        if command == "queue":
            await self._queue(session, communities, out)
        elif command == "canned":
            await self._canned(session, communities, out)
        elif command == "staffchat":
            await self._staffchat(session, person.id, communities, message, arg, out)
        else:
            await self._on_conversation(session, command, arg, person.id, communities, message, out)
        return True

    # --- the commands ----------------------------------------------------------------------------------
    async def _queue(self, session: AsyncSession, communities: list[int], out: TurnOutput) -> None:
        items = await self.desk.queue(session, communities)
        if not items:
            out.say(self.words.get("staff.queue_empty"))
            return
        lines = [self.words.get("staff.queue_header")]
        for item in items[:20]:
            status = (
                self.words.get("staff.status_waiting")
                if item.handoff.status == HandoffStatus.WAITING.value
                else self.words.get("staff.status_active", holder=item.holder_name or "")
            )
            lines.append(
                self.words.get(
                    "staff.queue_item",
                    id=item.address.conversation_id,
                    status=("⚠️" if item.handoff.urgent else "") + status,
                    summary=item.summary.one_line(),
                    since=item.waiting_since.astimezone(_tz(self.desk)).strftime("%m-%d %H:%M"),
                )
            )
        out.say("\n".join(lines))

    async def _canned(self, session: AsyncSession, communities: list[int], out: TurnOutput) -> None:
        replies = await self.desk.canned(session, communities[0])
        if not replies:
            out.say(self.words.get("staff.canned_empty"))
            return
        lines = [self.words.get("staff.canned_header")]
        lines += [f"#{i} {r.title}：{r.text[:60]}" for i, r in enumerate(replies, start=1)]
        out.say("\n".join(lines))

    async def _staffchat(
        self,
        session: AsyncSession,
        person_id: int,
        communities: list[int],
        message: IncomingMessage,
        arg: str,
        out: TurnOutput,
    ) -> None:
        if not message.is_group:
            out.say(self.words.get("staff.staffchat_group_only"))
            return
        if arg:
            community = await community_by_code(session, arg.strip())
            if community is None or community.id not in communities:
                out.say(self.words.get("staff.not_allowed"))
                return
        elif len(communities) == 1:
            community = await session.get(Community, communities[0])
            assert community is not None
        else:
            codes = [c.code for c in await ConversationRecords(session).communities(communities)]
            out.say(self.words.get("staff.staffchat_which", codes="、".join(codes)))
            return
        chat = await Repository(session).conversations.find_chat(message.platform.value, message.chat_id)
        assert chat is not None  # the dispatcher resolved it before the desk ran
        chat.purpose = STAFF_CHAT
        chat.community_id = community.id
        chat.listen = False
        out.chat_changed = True
        audit(
            session,
            actor_person_id=person_id,
            action="chat.bind_staff",
            target_type="chat",
            target_id=chat.id,
            community_id=community.id,
            detail={"platform": chat.platform, "chat": chat.external_id, "via": "chat"},
        )
        out.say(self.words.get("staff.staffchat_bound", community=community.name))

    async def _on_conversation(
        self,
        session: AsyncSession,
        command: str,
        arg: str,
        person_id: int,
        communities: list[int],
        message: IncomingMessage,
        out: TurnOutput,
    ) -> None:
        match = _WITH_ID.match(arg)
        if match is None:
            usage = {"reply": "staff.reply_usage", "note": "staff.note_usage"}.get(command, "staff.usage")
            out.say(self.words.get(usage))
            return
        conversation_id, text = int(match.group(1)), (match.group(2) or "").strip()
        conv = await session.get(Conversation, conversation_id)
        if conv is None or conv.community_id not in communities:
            out.say(self.words.get("staff.not_found", id=conversation_id))
            return
        try:
            if command == "take":
                outcome = await self.desk.take(
                    session,
                    conversation_id,
                    person_id,
                    holder_chat={"platform": message.platform.value, "chat_id": message.chat_id},
                    via="chat",
                )
                await self.desk.send(outcome.notices, None)
                out.say(self.words.get("staff.taken", id=conversation_id, who=outcome.address.name or "居民"))
            elif command == "reply":
                canned_id = None
                canned = re.fullmatch(r"#(\d{1,3})", text)
                if canned:
                    replies = await self.desk.canned(session, conv.community_id)
                    index = int(canned.group(1))
                    if not 1 <= index <= len(replies):
                        out.say(self.words.get("staff.canned_unknown", index=index))
                        return
                    text, canned_id = replies[index - 1].text, replies[index - 1].id
                outcome = await self.desk.reply(
                    session, conversation_id, person_id, text, via="chat", canned_id=canned_id
                )
                await self.desk.send(outcome.notices, None)
                out.say(
                    self.words.get("staff.replied", id=conversation_id, who=outcome.address.name or "居民")
                )
            elif command == "note":
                await self.desk.note(session, conversation_id, person_id, text, via="chat")
                out.say(self.words.get("staff.noted", id=conversation_id))
            elif command == "release":
                outcome = await self.desk.release(session, conversation_id, person_id, via="chat")
                await self.desk.send(outcome.notices, None)
                out.say(self.words.get("staff.released", id=conversation_id))
            elif command == "file":
                outcome = await self.desk.file_appeal(session, conversation_id, person_id, text, via="chat")
                await self.desk.send(outcome.notices, None)
                key = "staff.filed" if outcome.created else "staff.file_already"
                who = outcome.address.name or "居民"
                out.say(self.words.get(key, id=conversation_id, who=who, public_id=outcome.appeal))
        except HandoffError as exc:
            out.say(self.words.get(f"staff.{exc.key}", **exc.values))

    async def _join(self, session: AsyncSession, message: IncomingMessage, arg: str, out: TurnOutput) -> None:
        code = normalize_invite(arg)
        if code is None:
            out.say(self.words.get("invite.invalid"))
            return
        if message.is_group:
            # Posted where others can read it: burn it so nobody else can use it.
            await revoke_invite(session, code)
            out.say(self.words.get("invite.in_group"))
            return
        redis = self.desk.redis
        failures_key = Keys.invite_failures(message.platform, message.sender_id)
        failures = int(await redis.get(failures_key) or 0)
        if failures >= INVITE_FAILURES_PER_HOUR:
            out.say(self.words.get("invite.too_many"))
            return
        redemption = await redeem_invite(
            session,
            code,
            platform=message.platform.value,
            external_id=message.sender_id,
            display_name=message.sender_name,
        )
        if redemption is None:
            await redis.incr(failures_key)
            await redis.expire(failures_key, 3600)
            out.say(self.words.get("invite.invalid"))
            log.info("invite code refused", platform=message.platform.value, sender=message.sender_id)
            return
        audit(
            session,
            actor_person_id=redemption.person_id,
            action="invite.redeem",
            target_type="person",
            target_id=redemption.person_id,
            community_id=redemption.community.id,
            detail={
                "role": redemption.role.value,
                "buildings": list(redemption.buildings),
                "account": redemption.account_username,
                "code": format_invite(code)[:4] + "-****",
            },
        )
        if redemption.role is Role.STAFF:
            out.say(self.words.get("invite.redeemed_staff", community=redemption.community.name))
        else:
            buildings = "、".join(f"{b}栋" for b in redemption.buildings)
            out.say(
                self.words.get(
                    "invite.redeemed_leader", community=redemption.community.name, buildings=buildings
                )
            )


def _tz(desk: HandoffDesk) -> tzinfo:
    return ZoneInfo(desk.settings.timezone)
