"""Console authentication: logins, sessions, CSRF, and who may see which community.

- **Passwords**: argon2id hashes (bot/roles/), checked in worker threads a few at a time
  (``HUIYIN_STAFF_LOGIN_CONCURRENCY``), never on the event loop that serves residents.
- **Login limits**: every attempt is counted, before its password is checked, against the client's
  address (``HUIYIN_STAFF_LOGIN_CLIENT_MAX_FAILURES``) and against the user name, from any address
  (``HUIYIN_STAFF_LOGIN_MAX_FAILURES``), each over its own window, in one Redis script: no more attempts
  than the limits are ever evaluated, however many arrive at once; a successful login gives its attempt
  back. The client's address is the connecting one unless that is a trusted proxy (bot/staff/proxies.py).
- **Sessions**: a random session id in a cookie signed with the console secret (itsdangerous), whose
  server-side record lives in Redis (shared by every process) and expires after
  ``HUIYIN_STAFF_SESSION_HOURS``. Logging out deletes the record; a deactivated account or one that lost
  all its communities is refused on its next request, whatever its cookie says, and every request sees
  only the communities the account serves at that moment. An index of each account's sessions lets
  ``huiyin admin revoke-staff`` end them at once (:func:`end_sessions_of`).
- **CSRF**: each session has a token; every POST must carry it (form field ``csrf`` or header
  ``X-CSRF-Token``). The login form, before any session exists, uses a signed double-submit cookie.
- **Scope**: a :class:`StaffUser` carries the ids of the communities the person serves as staff and of
  the handlers (分拨对象) they act for; every query the console makes is filtered by them. A login with
  handlers only (``huiyin admin add-handler-member --new-login``) sees the appeals assigned to its
  handlers and nothing else.

The secret comes from ``HUIYIN_STAFF_SECRET_KEY``, else from ``<data_dir>/staff_secret.key``, created
with 256 random bits on first use (never a constant in the code).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import StaffAccount, utcnow
from bot.db.repository.cases import CaseRepository
from bot.roles import staff_community_ids, verify_password
from bot.settings import Settings
from bot.staff.proxies import limit_key
from bot.state import Keys

SESSION_COOKIE = "hy_staff"
LOGIN_COOKIE = "hy_staff_login"
SECRET_FILE = "staff_secret.key"


class NotAuthenticated(Exception):
    """No valid session: pages redirect to the login form, htmx and API requests get 401."""


class CsrfFailed(Exception):
    """A POST without the session's CSRF token: 403, nothing done."""


@dataclass(frozen=True, slots=True)
class StaffUser:
    """The logged-in staff member of one request."""

    session_id: str
    account_id: int
    person_id: int
    username: str
    display_name: str
    community_ids: tuple[int, ...]
    csrf: str
    handler_ids: tuple[int, ...] = ()

    def serves(self, community_id: int | None) -> bool:
        return community_id is not None and community_id in self.community_ids

    @property
    def is_staff(self) -> bool:
        """Staff of at least one community (the conversation desk, dashboard, canned replies, audit);
        otherwise only a handler's person, who sees their handlers' appeals."""
        return bool(self.community_ids)


def load_secret(settings: Settings) -> str:
    """The console secret: from settings, else from the data folder (created once, mode 0600)."""
    if settings.staff_secret_key is not None:
        value = settings.staff_secret_key.get_secret_value()
        if len(value) < 16:
            raise ValueError("HUIYIN_STAFF_SECRET_KEY must have at least 16 characters")
        return value
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    value = path.read_text().strip()
    if len(value) < 16:
        raise ValueError(f"{path} holds no usable secret; delete it to have a new one made")
    return value


class ConsoleAuth:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        secret = load_secret(settings)
        self._session_signer = TimestampSigner(secret, salt="huiyin.staff.session")
        self._login_signer = TimestampSigner(secret, salt="huiyin.staff.login")
        self.session_seconds = int(settings.staff_session_hours * 3600)
        self._admit = redis.register_script(_ADMIT)
        self._refund = redis.register_script(_REFUND)
        self._password_checks = asyncio.Semaphore(settings.staff_login_concurrency)

    # --- sessions ------------------------------------------------------------------------------------
    async def start_session(self, account: StaffAccount) -> tuple[str, str]:
        """A new session (a fresh id at every login: no fixation). Returns (cookie value, csrf token)."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        record = {"account_id": account.id, "csrf": csrf, "created": utcnow().isoformat()}
        index = Keys.staff.sessions_of(account.id)
        # Not a transaction: the two keys may live on different Redis Cluster nodes, and a session
        # missing from the index is still refused by the per-request check when its access goes.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(Keys.staff.session(session_id), json.dumps(record), ex=self.session_seconds)
            pipe.sadd(index, session_id)
            pipe.expire(index, self.session_seconds)
            await pipe.execute()
        cookie = self._session_signer.sign(session_id).decode()
        return cookie, csrf

    async def end_session(self, session_id: str, account_id: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(Keys.staff.session(session_id))
            pipe.srem(Keys.staff.sessions_of(account_id), session_id)
            await pipe.execute()

    async def user(self, session: AsyncSession, cookie: str | None) -> StaffUser:
        """The staff member behind a session cookie, checked against the database on every request."""
        if not cookie:
            raise NotAuthenticated
        try:
            session_id = self._session_signer.unsign(cookie, max_age=self.session_seconds).decode()
        except (BadSignature, SignatureExpired):
            raise NotAuthenticated from None
        raw = await self.redis.get(Keys.staff.session(session_id))
        if raw is None:
            raise NotAuthenticated
        record = json.loads(raw)
        account_id = int(record["account_id"])
        account = await session.get(StaffAccount, account_id)
        communities = await staff_community_ids(session, account.person_id) if account else []
        handlers = await CaseRepository(session).handler_ids_of(account.person_id) if account else []
        if account is None or not account.active or not (communities or handlers):
            # Nothing left to see: the session is over, not an empty console.
            await self.end_session(session_id, account_id)
            raise NotAuthenticated
        return StaffUser(
            session_id=session_id,
            account_id=account.id,
            person_id=account.person_id,
            username=account.username,
            display_name=account.display_name,
            community_ids=tuple(communities),
            csrf=str(record["csrf"]),
            handler_ids=tuple(sorted(handlers)),
        )

    @staticmethod
    def check_csrf(user: StaffUser, token: str | None) -> None:
        if not token or not hmac.compare_digest(token.encode(), user.csrf.encode()):
            raise CsrfFailed

    # --- logging in ----------------------------------------------------------------------------------
    def login_token(self) -> tuple[str, str]:
        """For the login form: (cookie value, form token). They must come back together."""
        token = secrets.token_urlsafe(24)
        return self._login_signer.sign(token).decode(), token

    def check_login_token(self, cookie: str | None, token: str | None) -> None:
        if not cookie or not token:
            raise CsrfFailed
        try:
            expected = self._login_signer.unsign(cookie, max_age=3600).decode()
        except (BadSignature, SignatureExpired):
            raise CsrfFailed from None
        if not hmac.compare_digest(expected.encode(), token.encode()):
            raise CsrfFailed

    async def may_log_in(self, session: AsyncSession, account_id: int | None) -> StaffAccount | None:
        """The account, when it is active and serves at least one community or acts for at least one
        handler (its password matched)."""
        account = await session.get(StaffAccount, account_id) if account_id is not None else None
        if account is None or not account.active:
            return None
        if await staff_community_ids(session, account.person_id):
            return account
        return account if await CaseRepository(session).handler_ids_of(account.person_id) else None

    # --- login attempts --------------------------------------------------------------------------------
    async def admit_login(self, client: str, username: str) -> bool:
        """Count one login attempt against the client's address and against the user name (whether or
        not such an account exists), before its password is looked at; False, counting nothing, when
        either is at its limit. Atomic (one script), so parallel attempts cannot all slip under it."""
        s = self.settings
        admitted = await self._admit(
            keys=[Keys.staff.login_client(limit_key(client)), Keys.staff.login_user(username)],
            args=[
                s.staff_login_client_max_failures,
                s.staff_login_client_window_s,
                s.staff_login_max_failures,
                s.staff_login_window_s,
            ],
        )
        return bool(admitted)

    async def login_succeeded(self, client: str, username: str) -> None:
        """Give a successful login's attempt back, so only failures (and attempts still in flight) count:
        colleagues logging in from one office address do not lock each other out."""
        await self._refund(keys=[Keys.staff.login_client(limit_key(client)), Keys.staff.login_user(username)])

    async def check_password(self, password_hash: str | None, password: str) -> bool:
        """:func:`bot.roles.verify_password` in a worker thread, a few at a time: argon2 is meant to cost
        CPU, and on the event loop a burst of logins would stall every resident's turn. Logins beyond
        ``HUIYIN_STAFF_LOGIN_CONCURRENCY`` wait here (the caller holds no database connection)."""
        async with self._password_checks:
            return await asyncio.to_thread(verify_password, password_hash, password)


_ADMIT = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then return 0 end
end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[2 * i]) end
end
return 1
"""

_REFUND = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 1
"""


async def end_sessions_of(redis: Redis, account_id: int) -> int:
    """End every open console session of an account (its access was taken away); how many there were."""
    index = Keys.staff.sessions_of(account_id)
    session_ids = list(await redis.smembers(index))
    ended = int(await redis.delete(*[Keys.staff.session(str(s)) for s in session_ids])) if session_ids else 0
    await redis.delete(index)
    return ended
