"""Answer with a primary understanding backend, and with a fallback while the primary is unreachable.

Used for the optional Rasa service (``HUIYIN_NLU=rasa``): Rasa is the primary, the embedded NLU the
fallback, so a Rasa outage degrades understanding instead of stopping the bot.

The contract with the primary: it signals that it could not answer by raising :class:`BackendError`.
:class:`BackendUnavailable` (connection refused, timeout, 5xx, no model loaded) opens an *outage*: one
warning is logged, every message is answered by the fallback, and the primary is tried again only after
a back-off, by one message at a time, so a dead service is not hammered. Any other :class:`BackendError`
(the primary refused this one message) is answered by the fallback without opening an outage.

Readiness: :meth:`FallbackNLU.health` returns ``None`` while the primary is healthy and otherwise a
reason such as ``"rasa unreachable at http://127.0.0.1:5005 (ConnectError); using embedded fallback"``.
That string is informational: the bot still understands messages, so ``/readyz`` should report it and
stay 200. :meth:`FallbackNLU.readiness` tells the two cases apart for the caller that builds ``/readyz``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from bot.nlu.base import NLUBackend, Understanding

log = structlog.get_logger()

DEFAULT_RETRY_AFTER_S = 10.0


class BackendError(Exception):
    """A backend could not answer this message; another backend may."""


class BackendUnavailable(BackendError):
    """A backend is unreachable or broken as a whole (connection refused, timeout, 5xx, no model)."""


class FallbackNLU:
    """An :class:`~bot.nlu.base.NLUBackend` that uses ``primary`` and falls back to ``fallback``.

    ``name`` says which backend answers now: the primary's name, or e.g. ``"embedded (fallback for
    rasa)"`` during an outage. ``retry_after_s`` is the back-off before the primary is tried again;
    ``clock`` (monotonic seconds) is injectable for tests.
    """

    def __init__(
        self,
        primary: NLUBackend,
        fallback: NLUBackend,
        *,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._outage: str | None = None  # why the primary is down, None while it answers
        self._retry_at = 0.0
        self._probing = False  # one message at a time probes a primary that is down
        self.on_fallback: Callable[[str], object] = _ignore  # bot.metrics counts fallbacks by reason
        self.name = primary.name

    @property
    def degraded(self) -> bool:
        """True while the fallback answers because the primary is down."""
        return self._outage is not None

    async def parse(self, text: str) -> Understanding:
        if self._outage is not None and (self._probing or self._clock() < self._retry_at):
            self.on_fallback("outage")
            return await self.fallback.parse(text)
        probing = self._outage is not None
        if probing:
            self._probing = True
        try:
            understanding = await self.primary.parse(text)
        except BackendUnavailable as exc:
            self._enter_outage(str(exc))
            self.on_fallback("outage")
            return await self.fallback.parse(text)
        except BackendError as exc:
            log.warning(
                "nlu primary could not parse a message, using fallback",
                primary=self.primary.name,
                fallback=self.fallback.name,
                reason=str(exc),
            )
            self.on_fallback("refused")
            return await self.fallback.parse(text)
        finally:
            if probing:
                self._probing = False
        self._leave_outage()
        return understanding

    async def health(self) -> str | None:
        """``None`` when the primary is healthy; otherwise why not and that the fallback answers.

        A failed check starts an outage; a passed one lets the next message try the primary at once, so
        ``/readyz`` polling brings a recovered primary back without waiting out the back-off. (The outage
        itself ends only when the primary answers a message.)
        """
        return (await self.readiness())[1]

    async def readiness(self) -> tuple[bool, str | None]:
        """``(can_answer, note)``: ``can_answer`` stays True while either backend is healthy, so
        ``/readyz`` answers 200 with ``note`` during a primary outage and 503 only when both fail."""
        reason = await self.primary.health()
        if reason is None:
            self._retry_at = 0.0
            return True, None
        self._enter_outage(reason)
        fallback_reason = await self.fallback.health()
        if fallback_reason is not None:
            return False, f"{reason}; {self.fallback.name} fallback not ready either: {fallback_reason}"
        return True, f"{reason}; using {self.fallback.name} fallback"

    async def aclose(self) -> None:
        """Release both backends' resources (e.g. the Rasa adapter's HTTP client), where they have any."""
        for backend in (self.primary, self.fallback):
            close = getattr(backend, "aclose", None)
            if close is not None:
                await close()

    def _enter_outage(self, reason: str) -> None:
        self._retry_at = self._clock() + self.retry_after_s
        if self._outage is None:
            # Once per outage: a down service must not flood the log with one line per message.
            log.warning(
                f"{self.primary.name} unreachable, falling back to {self.fallback.name} NLU",
                reason=reason,
                retry_after_s=self.retry_after_s,
            )
            self.name = f"{self.fallback.name} (fallback for {self.primary.name})"
        self._outage = reason

    def _leave_outage(self) -> None:
        if self._outage is not None:
            log.info(f"{self.primary.name} reachable again, using it for NLU", was=self._outage)
            self._outage = None
            self.name = self.primary.name


def _ignore(reason: str) -> None:
    """The default :attr:`FallbackNLU.on_fallback`: nothing counts fallbacks."""
