"""Every Redis key huiyin uses, built in one place: :class:`Keys` (a key family renamed here is renamed
everywhere, and no other module spells a key).

The names are part of a deployment's data: a server upgraded in place must find the dialogs, held
markers, console sessions and claims the previous version wrote, so a name changes only with a migration.
``tests/test_state_keys.py`` pins each family.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from bot.message import ChatType, IncomingMessage, Platform

PREFIX = "hy"
DIALOGS_COMPLETE = f"{PREFIX}:dlg:complete"
"""Set once the durable copies of half-finished dialogs are back in Redis (``Runtime.restore_dialogs``, at
start-up). While it exists, a conversation without a state key has no dialog and the database need not be
asked; when Redis loses its data, this key goes with it and every turn asks the database again."""
HELD_COMPLETE = f"{PREFIX}:held:complete"
"""Set once every conversation held by staff has its marker again (``HandoffDesk.restore_markers``); see
``bot.handoff.desk``."""
COMPLETE_MARKERS = (DIALOGS_COMPLETE, HELD_COMPLETE)


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Whose dialog this is: one per resident per chat, so neighbours in a group don't share a form."""

    platform: Platform
    chat_id: str
    user_id: str

    @classmethod
    def of(cls, message: IncomingMessage) -> ConversationKey:
        return cls(message.platform, message.chat_id, message.sender_id)

    @classmethod
    def private(cls, platform: Platform, user_id: str, private_chat_id: str | None = None) -> ConversationKey:
        return cls(platform, private_chat_id or user_id, user_id)

    @property
    def part(self) -> str:
        return f"{self.platform.value}:{self.chat_id}:{self.user_id}"

    def __str__(self) -> str:
        return self.part


def private_key_for(message: IncomingMessage) -> ConversationKey:
    """The conversation key of the sender's private chat with the bot on the message's platform."""
    if message.chat_type is ChatType.PRIVATE:
        return ConversationKey.of(message)
    return ConversationKey.private(message.platform, message.sender_id)


def _tagged(tag: str, rest: str) -> str:
    return f"{PREFIX}:{{{tag}}}:{rest}"


def _plain(rest: str) -> str:
    return f"{PREFIX}:{rest}"


class StaffKeys:
    """The staff console's keys (reached as ``Keys.staff``)."""

    @staticmethod
    def session(session_id: str) -> str:
        """A console session's record (JSON), expiring with the session."""
        return _plain(f"staffsess:{session_id}")

    @staticmethod
    def sessions_of(account_id: int) -> str:
        """The set of an account's open console session ids (to end them all when its access goes)."""
        return _plain(f"staffsess:of:{account_id}")

    # One hash tag for every login counter: the admission script reads an address's counter and a name's
    # together, and on a Redis Cluster a script keeps to one slot. (Logins are few; one slot carries them.)
    @staticmethod
    def login_client(limited_address: str) -> str:
        """Failed logins counted for one client (``limited_address``: ``bot.staff.proxies.limit_key``)."""
        return _tagged("staff-login", f"client:{limited_address}")

    @staticmethod
    def login_user(username: str) -> str:
        """Failed logins counted for one account name."""
        return _tagged("staff-login", f"user:{username}")


class ChannelKeys:
    """The keys of the platform channels (reached as ``Keys.channels``)."""

    @staticmethod
    def inbox(platform: Platform, recipient: str) -> str:
        """A REST recipient's mailbox of messages sent to it (a list, newest last)."""
        return _plain(f"inbox:{platform.value}:{recipient}")

    @staticmethod
    def telegram_button(token: str) -> str:
        """A Telegram inline button's payload, by its callback token."""
        return _plain(f"btn:tg:{token}")

    @staticmethod
    def options(platform: Platform, chat_id: str, user_id: str) -> str:
        """The numbered options last offered to a user in a chat (WeChat, WeCom)."""
        return _plain(f"btn:{platform.value}:{chat_id}:{user_id}")

    @staticmethod
    def wechat_token(app_id: str) -> str:
        """A WeChat official account's cached API access token, shared by every process."""
        return _plain(f"wx:token:{app_id}")

    @staticmethod
    def wecom_token(corp_id: str, agent_id: int) -> str:
        """A WeCom application's cached API access token, shared by every process."""
        return _plain(f"wecom:token:{corp_id}:{agent_id}")

    @staticmethod
    def passive_claim(window: str, key: ConversationKey, message_id: str) -> str:
        """The claim of the one path allowed to deliver a WeChat/WeCom message's replies (``window``:
        ``wx``, ``wecom``)."""
        return Keys.delivery(f"{window}:answered", key, message_id)

    @staticmethod
    def wechat_nonce(timestamp: str, nonce: str) -> str:
        """The digest of the first body a plaintext WeChat callback's signed timestamp and nonce came with."""
        return _plain(f"wx:nonce:{timestamp}:{nonce}")

    @staticmethod
    def send_claim(record: str, key: ConversationKey, message_id: str) -> str:
        """Held while one copy of a message is being handled and its replies sent (copies wait for its
        outcome); ``record`` names the channel (``tg``). See :meth:`integrations.core.Core.deliver_once`."""
        return Keys.delivery(f"{record}:claim", key, message_id)

    @staticmethod
    def sent(record: str, key: ConversationKey, message_id: str) -> str:
        """Set once a message's replies were sent by the channel ``record`` names."""
        return Keys.delivery(f"{record}:done", key, message_id)


class Keys:
    """The key builder. A conversation's keys share its hash tag, ``{platform:chat_id:user_id}``, so that
    each script of a turn touches one Redis Cluster hash slot; keys used only by single commands (a
    mailbox, a relay draft) keep plain names, which need no tag. The console's and the channels' keys are
    grouped under :attr:`staff` and :attr:`channels`.
    """

    staff = StaffKeys
    channels = ChannelKeys

    # --- one conversation: one hash slot --------------------------------------------------------------
    @staticmethod
    def state(key: ConversationKey | str) -> str:
        """A conversation's dialog state (``key``, or its :attr:`~ConversationKey.part` as the database
        stores it in ``conversation.key``)."""
        return _tagged(key if isinstance(key, str) else key.part, "dlg")

    @staticmethod
    def lock(key: ConversationKey) -> str:
        return _tagged(key.part, "lock")

    @staticmethod
    def seen(key: ConversationKey, message_id: str) -> str:
        """The dedup record of a handled message: never the message id alone, since another sender reusing
        it (any REST client can) would be answered with the first sender's replies."""
        return _tagged(key.part, f"seen:{message_id}")

    @staticmethod
    def delivery(record: str, key: ConversationKey, message_id: str) -> str:
        """A channel's record about delivering the replies of ``key``'s message ``message_id`` (``record``
        says whose and which: ``tg:done``, ``wx:answered``…). Per conversation like :meth:`seen`: message
        ids are per chat on some platforms, and one resident's record must not silence another's."""
        return _tagged(key.part, f"{record}:{message_id}")

    @staticmethod
    def held(key: ConversationKey) -> str:
        """Present while staff hold the conversation (the handoff's id)."""
        return _tagged(key.part, "held")

    @staticmethod
    def rating_comment(key: ConversationKey) -> str:
        return _tagged(key.part, "rating-comment")

    @staticmethod
    def offer(key: ConversationKey) -> str:
        """Listen mode's offer cooldown for one resident in one group."""
        return _tagged(key.part, "offer")

    @staticmethod
    def chat_settings(platform: Platform, chat_id: str) -> str:
        return _tagged(f"{platform.value}:{chat_id}", "chat")

    @staticmethod
    def slot_copy(marker: str, slot: int) -> str:
        """The copy of a 'complete' marker (:data:`DIALOGS_COMPLETE`…) that lives in Redis Cluster hash
        slot ``slot``."""
        return _tagged(_slot_tags()[slot], marker.removeprefix(f"{PREFIX}:"))

    @staticmethod
    def in_slot_of(key: ConversationKey, flags: Sequence[str]) -> list[str]:
        """``flags`` with each 'complete' marker replaced by its copy in ``key``'s slot (on a cluster)."""
        slot = key_slot(Keys.lock(key).encode())
        return [Keys.slot_copy(f, slot) if f in COMPLETE_MARKERS else f for f in flags]

    # --- single-command keys ---------------------------------------------------------------------------
    NOTICES = _plain("notices")

    @staticmethod
    def relay_draft(platform: Platform, sender_id: str) -> str:
        """A building leader's draft of an appeal relayed for a resident, until it is confirmed."""
        return _plain(f"relay:{platform.value}:{sender_id}")

    @staticmethod
    def invite_failures(platform: Platform, sender_id: str) -> str:
        """Failed invite codes a sender tried in the last hour (a guessing sender is refused)."""
        return _plain(f"invitefail:{platform.value}:{sender_id}")


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """A hash tag for each of the 16384 Redis Cluster slots (``_slot_tags()[s]`` hashes to slot s), found
    by trying short strings (~170k CRC16s, a fraction of a second, once per process on a cluster)."""
    tags: list[str] = [""] * REDIS_CLUSTER_HASH_SLOTS
    missing, n = REDIS_CLUSTER_HASH_SLOTS, 0
    while missing:
        tag = f"s{n}"
        slot = binascii.crc_hqx(tag.encode(), 0) % REDIS_CLUSTER_HASH_SLOTS
        if not tags[slot]:
            tags[slot] = tag
            missing -= 1
        n += 1
    return tuple(tags)
