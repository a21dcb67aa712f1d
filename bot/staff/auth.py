"""Console authentication: logins, sessions, CSRF, and who may see which community.

- **Passwords**: argon2id hashes (bot/roles.py); failed logins per client and user name are limited.
- **Sessions**: a random session id in a cookie signed with the console secret (itsdangerous), whose
  server-side record lives in Redis (shared by every process) and expires after
  ``HUIYIN_STAFF_SESSION_HOURS``. Logging out deletes the record; a deactivated account or one that lost
  all its communities is refused on its next request, whatever its cookie says.
- **CSRF**: each session has a token; every POST must carry it (form field ``csrf`` or header
  ``X-CSRF-Token``). The login form, before any session exists, uses a signed double-submit cookie.
- **Scope**: a :class:`StaffUser` carries the ids of the communities the person serves as staff; every
  query the console makes is filtered by them.

The secret comes from ``HUIYIN_STAFF_SECRET_KEY``, else from ``<data_dir>/staff_secret.key``, created
with 256 random bits on first use (never a constant in the code).
"""

from __future__ import annotations

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
from bot.roles import account_by_username, staff_community_ids, verify_password
from bot.settings import Settings

SESSION_COOKIE = "hy_staff"
LOGIN_COOKIE = "hy_staff_login"
SECRET_FILE = "staff_secret.key"
LOGIN_WINDOW_S = 15 * 60


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

    def serves(self, community_id: int | None) -> bool:
        return community_id is not None and community_id in self.community_ids


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

    # --- sessions ------------------------------------------------------------------------------------
    async def start_session(self, account: StaffAccount) -> tuple[str, str]:
        """A new session (a fresh id at every login: no fixation). Returns (cookie value, csrf token)."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        record = {"account_id": account.id, "csrf": csrf, "created": utcnow().isoformat()}
        await self.redis.set(_session_key(session_id), json.dumps(record), ex=self.session_seconds)
        cookie = self._session_signer.sign(session_id).decode()
        return cookie, csrf

    async def end_session(self, session_id: str) -> None:
        await self.redis.delete(_session_key(session_id))

    async def user(self, session: AsyncSession, cookie: str | None) -> StaffUser:
        """The staff member behind a session cookie, checked against the database on every request."""
        if not cookie:
            raise NotAuthenticated
        try:
            session_id = self._session_signer.unsign(cookie, max_age=self.session_seconds).decode()
        except (BadSignature, SignatureExpired):
            raise NotAuthenticated from None
        raw = await self.redis.get(_session_key(session_id))
        if raw is None:
            raise NotAuthenticated
        record = json.loads(raw)
        account = await session.get(StaffAccount, int(record["account_id"]))
        if account is None or not account.active:
            await self.end_session(session_id)
            raise NotAuthenticated
        communities = await staff_community_ids(session, account.person_id)
        return StaffUser(
            session_id=session_id,
            account_id=account.id,
            person_id=account.person_id,
            username=account.username,
            display_name=account.display_name,
            community_ids=tuple(communities),
            csrf=str(record["csrf"]),
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

    async def too_many_failures(self, client: str, username: str) -> bool:
        count = await self.redis.get(_failure_key(client, username))
        return int(count or 0) >= self.settings.staff_login_max_failures

    async def authenticate(
        self, session: AsyncSession, client: str, username: str, password: str
    ) -> StaffAccount | None:
        """The account when the password matches and the account is active; counts failures."""
        username = username.strip().lower()[:64]
        account = await account_by_username(session, username) if username else None
        ok = verify_password(account.password_hash if account else None, password)
        if account is None or not ok or not account.active:
            key = _failure_key(client, username)
            await self.redis.incr(key)
            await self.redis.expire(key, LOGIN_WINDOW_S)
            return None
        await self.redis.delete(_failure_key(client, username))
        account.last_login_at = utcnow()
        return account


def _session_key(session_id: str) -> str:
    return f"hy:staffsess:{session_id}"


def _failure_key(client: str, username: str) -> str:
    return f"hy:loginfail:{client}:{username}"
