"""One message's hold on its conversation: what :meth:`StateStore.turn` yields."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from bot.state.keys import ConversationKey, Keys
from bot.state.scripts import STATE_RETENTION_S, TurnScripts

log = structlog.get_logger(__name__)


class TurnStore(Protocol):
    """What a turn needs of the :class:`~bot.state.store.StateStore` that opened it."""

    cluster: bool
    lock_ms: int
    renew_every_s: float
    scripts: TurnScripts

    async def put_state(self, key: ConversationKey, state: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class Turn:
    """One message's hold on its conversation, from :meth:`StateStore.turn`.

    ``replayed`` holds the replies recorded for a message that was already handled (a redelivery):
    then the lock was not taken and nothing is to be done. ``idle`` is True when the turn was asked
    only for a conversation that is engaged and it is not (then nothing was taken either; ``idle_hash``
    holds the hash asked for in that case, empty if it does not exist). Otherwise
    ``state`` is the dialog state read under the lock, ``flags`` whether each flag key asked for exists,
    and :meth:`finish` ends the turn.
    """

    store: TurnStore
    key: ConversationKey
    seen_name: str
    token: str
    replayed: list[dict[str, Any]] | None = None
    idle: bool = False
    idle_hash: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    flags: tuple[bool, ...] = ()
    finished: bool = field(default=False)
    # The lock's watchdog: a timer that extends the lock every third of its expiry while the turn runs
    # (see StateStore.turn); None once the turn stopped renewing.
    _renewal: asyncio.TimerHandle | None = field(default=None, repr=False)
    _extending: asyncio.Task[None] | None = field(default=None, repr=False)

    async def finish(
        self,
        state: dict[str, Any] | None,
        replies: list[dict[str, Any]],
        dedup_ttl_s: int,
        *,
        also: tuple[ConversationKey, dict[str, Any]] | None = None,
    ) -> None:
        """Save the new dialog state and the dedup record of this message, and release the lock: one
        atomic script, so a redelivery never sees the record without the state that goes with it.

        ``also`` is another conversation's key and state to save in the same round trip (a dialog moving
        into the resident's private chat), as :meth:`StateStore.put_state` would: if a message of that
        conversation holds its lock, it is saved once that lock is free, after this turn's is released.
        """
        try:
            written = await self._close(state, replies, dedup_ttl_s, also)
        finally:
            self.stop_renewing()
        self.finished = True
        if not written and also is not None:
            await self.store.put_state(*also)

    async def _close(
        self,
        state: dict[str, Any] | None,
        replies: list[dict[str, Any]],
        dedup_ttl_s: int,
        also: tuple[ConversationKey, dict[str, Any]] | None,
    ) -> bool:
        """The closing script; False when ``also`` is left for :meth:`StateStore.put_state` to save."""
        store = self.store
        keys = [Keys.lock(self.key), self.seen_name, Keys.state(self.key)]
        args: list[str | int] = [
            self.token,
            json.dumps(replies, ensure_ascii=False),
            dedup_ttl_s,
            "" if state is None else json.dumps(state, ensure_ascii=False),
            STATE_RETENTION_S,
        ]
        if also is not None and not store.cluster:
            keys += [Keys.lock(also[0]), Keys.state(also[0])]
            args.append(json.dumps(also[1], ensure_ascii=False))
        # On a cluster the other conversation is in another slot: finish saves it with put_state (one
        # more round trip, on the turn a group dialog moves into the private chat).
        return bool(await store.scripts.close_turn(keys=keys, args=args)) and not (store.cluster and also)

    # --- the lock's watchdog -----------------------------------------------------------------------------
    async def _extend_lock(self) -> bool:
        """Extend the lock by its expiry if this turn still holds it (the watchdog's one command)."""
        return bool(
            await self.store.scripts.extend(keys=[Keys.lock(self.key)], args=[self.token, self.store.lock_ms])
        )

    def _renew_later(self) -> None:
        self._renewal = asyncio.get_running_loop().call_later(self.store.renew_every_s, self._renew)

    def _renew(self) -> None:
        self._extending = asyncio.ensure_future(self._extend())

    async def _extend(self) -> None:
        try:
            kept = await self._extend_lock()
        except Exception as exc:  # Redis unreachable a moment: the lock lasts its expiry, try again
            log.warning("conversation lock not extended", conversation=str(self.key), error=repr(exc))
            kept = True
        if self._renewal is None:  # the turn ended meanwhile (its lock is released or not ours anyway)
            return
        if kept:
            self._renew_later()
        else:
            self._renewal = None
            # The loop stalled past the lock's expiry and another message may hold it now.
            log.warning("conversation lock lost before the turn ended", conversation=str(self.key))

    def stop_renewing(self) -> None:
        """Stop extending the lock (the turn ends; a test also calls it to play a holder that died)."""
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
