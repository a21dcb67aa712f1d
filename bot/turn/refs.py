"""The database ids behind a conversation (its row, the resident's, the chat's and its community),
created on a conversation's first message and cached per process afterwards."""

from __future__ import annotations

import time

from bot.db.repository import ConversationRef, Repository
from bot.message import ChatType, IncomingMessage
from bot.state import ConversationKey, private_key_for
from bot.turn.services import Services

# Conversations whose database ids are cached per process (a few MB at most).
REF_CACHE_SIZE = 50_000
REF_CACHE_TTL_S = 60.0
"""How long a process trusts its cached ids of a conversation. The ids never change, but the community a
chat belongs to can (``huiyin admin bind-chat``): running servers see a rebinding within this time."""


class ConversationRefs:
    """Resolves a message's conversation to its ids. A turn collects the ids it creates in ``created``
    and hands them to :meth:`remember` once its transaction has committed: a turn that failed before its
    commit created nothing, and its ids must not be reused."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._cache: dict[str, tuple[float, ConversationRef]] = {}  # key -> (cached at, ids)

    async def resolve(
        self,
        repo: Repository,
        message: IncomingMessage,
        key: ConversationKey,
        created: dict[str, ConversationRef],
    ) -> ConversationRef:
        """The ids behind this conversation: cached (a turn then costs one UPDATE instead of a handful
        of SELECTs), or read and created."""
        cached = self._cached(key)
        if cached is not None:
            return cached
        settings = self.services.settings
        existing = await repo.conversations.find_chat(message.platform.value, message.chat_id)
        code = settings.default_community
        if existing is not None:
            code = await repo.conversations.community_code(existing.community_id) or code
        community = await repo.conversations.community(code, self.services.community_name(code))
        person = await repo.people.person_for(message.platform.value, message.sender_id, message.sender_name)
        chat = existing or await repo.conversations.chat(
            message.platform.value,
            message.chat_id,
            message.chat_type.value,
            message.chat_title,
            community.id,
            settings.group_listen_default if message.is_group else False,
        )
        conv = await repo.conversations.conversation(key.part, message.platform.value, chat, person)
        ref = ConversationRef(conv.id, person.id, chat.community_id, code, chat.id, chat.purpose)
        created[key.part] = ref
        return ref

    async def resolve_private(
        self,
        repo: Repository,
        message: IncomingMessage,
        ref: ConversationRef,
        created: dict[str, ConversationRef],
    ) -> ConversationRef:
        """The ids of the resident's private conversation, for a form moving there from a group."""
        key = private_key_for(message)
        cached = self._cached(key)
        if cached is not None:
            return cached
        person = await repo.people.person(ref.person_id)
        assert person is not None
        chat = await repo.conversations.chat(
            message.platform.value, key.chat_id, ChatType.PRIVATE.value, "", ref.community_id, False
        )
        conv = await repo.conversations.conversation(key.part, message.platform.value, chat, person)
        private_ref = ConversationRef(
            conv.id, person.id, chat.community_id, ref.community_code, chat.id, chat.purpose
        )
        created[key.part] = private_ref
        return private_ref

    def remember(self, created: dict[str, ConversationRef], *, chat_changed: IncomingMessage | None) -> None:
        """Cache the ids a committed turn created; ``chat_changed``: the turn rebound that message's
        chat, so the cached ids of its conversations are stale."""
        if len(self._cache) + len(created) > REF_CACHE_SIZE:
            self._cache.clear()
        now = time.monotonic()
        self._cache.update((k, (now, ref)) for k, ref in created.items())
        if chat_changed is not None:
            prefix = f"{chat_changed.platform.value}:{chat_changed.chat_id}:"
            for stale in [k for k in self._cache if k.startswith(prefix)]:
                del self._cache[stale]

    def forget(self, key: ConversationKey) -> bool:
        """Drop the cached ids of ``key``'s conversation (it was deleted); True if some were cached."""
        return self._cache.pop(key.part, None) is not None

    def _cached(self, key: ConversationKey) -> ConversationRef | None:
        entry = self._cache.get(key.part)
        if entry is None:
            return None
        cached_at, ref = entry
        if time.monotonic() - cached_at > REF_CACHE_TTL_S:
            del self._cache[key.part]
            return None
        return ref
