"""Console login under attack: attempt limits per client address and per user name that hold under
parallel attempts, X-Forwarded-For believed only from trusted proxies (in the app and in a real
`huiyin serve`), password checks off the event loop, and sessions that follow `revoke-staff`."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from bot.db.models import AuditEntry, StaffAccount
from bot.staff.console import LOGIN_REFUSED
from bot.staff.proxies import client_address, limit_key
from tests.conftest import REAL, REAL_DATABASE_URL, REAL_REDIS_URL
from tests.staff.conftest import PASSWORD, World, _hidden, login


@asynccontextmanager
async def client_from(world: World, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser connecting from ``address`` (the app, in-process, sees it as the direct peer)."""
    from bot.app import create_app

    app = create_app(runtime=world.rt)
    app.state.runtime = world.rt
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def login_token(client: httpx.AsyncClient) -> str:
    """Open the login form; its token goes with the cookie the client now keeps."""
    return _hidden((await client.get("/staff/login")).text, "csrf")


async def post_login(
    client: httpx.AsyncClient, token: str, username: str, password: str, **headers: str
) -> httpx.Response:
    """Post the login form with ``token``. Posts sent together share one form; one after another, a
    refused post's answer is a new form: use :func:`attempt` for those."""
    return await client.post(
        "/staff/login",
        data={"username": username, "password": password, "csrf": token, "next": ""},
        headers=headers,
    )


async def attempt(client: httpx.AsyncClient, username: str, password: str, **headers: str) -> int:
    """One login from a fresh form, as a person (or a script imitating one) does; the status."""
    return (await post_login(client, await login_token(client), username, password, **headers)).status_code


async def failed_login_clients(world: World) -> list[str]:
    async with world.rt.db.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(AuditEntry.detail)
            .where(AuditEntry.action == "console.login_failed")
            .order_by(AuditEntry.id)
        )
        return [str(detail["client"]) for detail in rows.scalars()]


# --- the limits ---------------------------------------------------------------------------------------------
async def test_parallel_attempts_on_one_account_never_exceed_its_limit(world: World) -> None:
    limit = world.rt.settings.staff_login_max_failures
    async with client_from(world, "198.51.100.10") as client:
        token = await login_token(client)
        answers = await asyncio.gather(
            *(post_login(client, token, "lina", f"wrong password {i}") for i in range(40))
        )
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) == limit and statuses.count(429) == 40 - limit, statuses
    assert len(await failed_login_clients(world)) == limit  # only these reached the password check


async def test_parallel_attempts_from_one_address_never_exceed_its_limit(world: World) -> None:
    limit = world.rt.settings.staff_login_client_max_failures
    async with client_from(world, "198.51.100.11") as client:
        token = await login_token(client)
        answers = await asyncio.gather(
            *(post_login(client, token, f"user{i}", PASSWORD) for i in range(limit + 20))
        )
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) == limit and statuses.count(429) == 20, statuses


async def test_one_password_sprayed_over_many_accounts_from_one_address(world: World) -> None:
    limit = world.rt.settings.staff_login_client_max_failures
    async with client_from(world, "198.51.100.12") as spray:
        for i in range(limit):
            assert await attempt(spray, f"staff{i}", "Password123") == 401
        assert await attempt(spray, "staff-next", "Password123") == 429
        # Even a right password is not checked from this address now...
        assert await attempt(spray, "lina", PASSWORD) == 429
    # ...while lina, elsewhere, logs in as usual.
    async with client_from(world, "203.0.113.40") as office:
        assert await attempt(office, "lina", PASSWORD) == 303


async def test_one_account_attacked_from_many_addresses(world: World) -> None:
    limit = world.rt.settings.staff_login_max_failures
    statuses = []
    for i in range(limit + 3):
        async with client_from(world, f"192.0.2.{i + 1}") as client:
            statuses.append(await attempt(client, "lina", "guess"))
    assert statuses == [401] * limit + [429] * 3
    async with client_from(world, "203.0.113.41") as fresh:
        assert await attempt(fresh, "lina", PASSWORD) == 429
        # Other accounts are not affected.
        assert await attempt(fresh, "zhao", PASSWORD) == 303


async def test_a_refused_attempt_reads_the_same_for_any_user_name(world: World) -> None:
    limit = world.rt.settings.staff_login_max_failures
    async with client_from(world, "198.51.100.13") as client:
        refused = {}
        for name in ("lina", "nobody"):
            for _ in range(limit):
                assert await attempt(client, name, "guess") == 401
            refused[name] = await post_login(client, await login_token(client), name, "guess")

    def message(page: httpx.Response) -> str:
        found = re.search(r'role="alert">([^<]*)<', page.text)
        assert found, page.text
        return found.group(1)

    assert {r.status_code for r in refused.values()} == {429}
    assert message(refused["lina"]) == message(refused["nobody"]) == LOGIN_REFUSED
    assert re.fullmatch(r"[\u4e00-\u9fff，。]+", LOGIN_REFUSED)


async def test_colleagues_logging_in_from_one_office_do_not_lock_it(world: World) -> None:
    """Successful logins give their attempt back: a whole office behind one address logs in all day."""
    limit = world.rt.settings.staff_login_client_max_failures
    async with client_from(world, "198.51.100.14") as office:
        for i in range(limit + 5):
            name = "lina" if i % 2 else "zhao"
            assert await attempt(office, name, PASSWORD) == 303, i


# --- the client's address -------------------------------------------------------------------------------------
NETS = [ipaddress.ip_network(n) for n in ("127.0.0.1/32", "10.0.0.0/8", "::1/128")]


def test_forwarded_for_is_read_only_from_a_trusted_peer() -> None:
    # Nobody trusted (the default): the header never counts.
    assert client_address("127.0.0.1", ["203.0.113.5"], []) == "127.0.0.1"
    # An untrusted peer's header is ignored.
    assert client_address("198.51.100.1", ["203.0.113.5"], NETS) == "198.51.100.1"
    # Through trusted proxies: the right-most address that is not one of them, whatever is left of it.
    assert client_address("127.0.0.1", ["203.0.113.5"], NETS) == "203.0.113.5"
    assert client_address("127.0.0.1", ["1.1.1.1, 203.0.113.5, 10.2.3.4"], NETS) == "203.0.113.5"
    assert client_address("10.0.0.2", ["1.1.1.1", "203.0.113.5:5555"], NETS) == "203.0.113.5"
    assert client_address("::1", ["[2001:db8::7]:443"], NETS) == "2001:db8::7"
    # Every hop a proxy of ours: the left-most; no header: the peer.
    assert client_address("127.0.0.1", ["10.0.0.9, 10.0.0.8"], NETS) == "10.0.0.9"
    assert client_address("127.0.0.1", [], NETS) == "127.0.0.1"
    assert client_address(None, ["203.0.113.5"], NETS) == "unknown"


def test_trusted_proxies_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bot.settings import Settings

    assert Settings().trusted_proxies == []
    monkeypatch.setenv("HUIYIN_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1")
    assert Settings().trusted_proxies == NETS
    monkeypatch.setenv("HUIYIN_TRUSTED_PROXIES", "10.0.0.1/8")  # host bits: surely a typo, refused
    with pytest.raises(ValidationError):
        Settings()


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("::ffff:203.0.113.5") == "203.0.113.5" == limit_key("203.0.113.5")


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(world, "127.0.0.1") as client:
        assert await attempt(client, "lina", "guess", **{"X-Forwarded-For": "203.0.113.7"}) == 401
        monkeypatch.setattr(world.rt.settings, "trusted_proxies", NETS)
        assert await attempt(client, "lina", "guess", **{"X-Forwarded-For": "1.1.1.1, 203.0.113.8"}) == 401
    assert await failed_login_clients(world) == ["127.0.0.1", "203.0.113.8"]


def _serve_env(world: World, **extra: str) -> dict[str, str]:
    """`huiyin serve` on the test's own storage: its SQLite file, or the real services."""
    from tests.web.webchat_servers import embedded_env

    env = embedded_env(world.rt.settings.data_dir)
    if REAL:
        env.update(DATABASE_URL=REAL_DATABASE_URL, REDIS_URL=REAL_REDIS_URL)
    env.update(extra)
    return env


async def test_huiyin_serve_believes_forwarded_for_only_from_trusted_proxies(
    world: World, tmp_path: Path
) -> None:
    """Through uvicorn, as deployed: it would believe any loopback peer's header on its own."""
    from tests.web.webchat_servers import running_huiyin

    cases = [
        ({}, "203.0.113.7", "127.0.0.1"),
        (
            {"HUIYIN_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"},
            "1.1.1.1, 203.0.113.8, 10.9.9.9",
            "203.0.113.8",
        ),
    ]
    for i, (extra, forwarded, _) in enumerate(cases):
        workdir = tmp_path / f"serve{i}"
        workdir.mkdir()
        with running_huiyin(workdir, _serve_env(world, **extra)) as served:
            async with httpx.AsyncClient(base_url=served.base, trust_env=False) as client:
                status = await attempt(client, "lina", "guess", **{"X-Forwarded-For": forwarded})
                assert status == 401, served.log_tail()
    assert await failed_login_clients(world) == [client for _, _, client in cases]


# --- password checks and the event loop -------------------------------------------------------------------------
async def test_logins_do_not_stall_the_event_loop(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """While several logins check their passwords, the loop keeps turning: its longest pause stays well
    under the time one of those checks took, measured in the same run (on a busy machine both stretch
    alike). Checked on the loop, as before, each check would be one pause at least as long as itself."""
    from argon2 import PasswordHasher

    import bot.staff.auth

    hasher = PasswordHasher(time_cost=2, memory_cost=32 * 1024, parallelism=1)
    for _ in range(6):  # a check long enough to stand well above scheduling noise
        hashed = hasher.hash(PASSWORD)
        started = time.perf_counter()
        hasher.verify(hashed, PASSWORD)
        if time.perf_counter() - started >= 0.3:
            break
        hasher = PasswordHasher(time_cost=hasher.time_cost * 2, memory_cost=32 * 1024, parallelism=1)
    monkeypatch.setattr("bot.roles._hasher", hasher)
    async with world.rt.db.unit_of_work() as uow:
        await uow.session.execute(
            update(StaffAccount).where(StaffAccount.username == "lina").values(password_hash=hashed)
        )
        await uow.commit()

    checks: list[float] = []  # the real verification, timed where the console calls it
    verify = bot.staff.auth.verify_password

    def timed_verify(password_hash: str | None, password: str) -> bool:
        started = time.perf_counter()
        try:
            return verify(password_hash, password)
        finally:
            checks.append(time.perf_counter() - started)

    monkeypatch.setattr(bot.staff.auth, "verify_password", timed_verify)

    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    logins = 4
    async with client_from(world, "198.51.100.20") as client:
        token = await login_token(client)
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        answers = await asyncio.gather(*(post_login(client, token, "lina", PASSWORD) for _ in range(logins)))
        stop.set()
        await ticking
    assert [a.status_code for a in answers] == [303] * logins and len(checks) == logins
    check_s = statistics.median(checks)
    assert max(gaps) < check_s / 2, (max(gaps), checks)


# --- sessions after revoke-staff ----------------------------------------------------------------------------------
def _huiyin_admin(world: World, *args: str) -> str:
    """`huiyin admin ...` against the test's own storage, as an operator runs it next to the server."""
    from click.testing import CliRunner

    from bot.cli import main

    env: dict[str, str | None] = {"HUIYIN_DATA_DIR": str(world.rt.settings.data_dir)}
    env.update(
        {"DATABASE_URL": REAL_DATABASE_URL, "REDIS_URL": REAL_REDIS_URL}
        if REAL
        else {"DATABASE_URL": None, "REDIS_URL": None}
    )
    result = CliRunner().invoke(main, ["admin", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_revoke_staff_narrows_then_ends_an_open_session(
    world: World, console: httpx.AsyncClient
) -> None:
    await asyncio.to_thread(_huiyin_admin, world, "grant-staff", "lina", "--community", "laoyuan")
    assert (await login(console, "lina")).status_code == 303
    assert (await console.get("/staff/appeals", params={"community": "laoyuan"})).status_code == 200
    assert "老园社区" in (await console.get("/staff/appeals")).text  # the community filter offers it

    # One community fewer: the same session sees only what is left.
    await asyncio.to_thread(_huiyin_admin, world, "revoke-staff", "lina", "--community", "laoyuan")
    assert (await console.get("/staff/appeals", params={"community": "laoyuan"})).status_code == 404
    page = await console.get("/staff/appeals")
    assert page.status_code == 200 and "老园社区" not in page.text
    assert (await console.get("/staff/appeals", params={"community": "demo"})).status_code == 200

    # None left: logged out, on pages and on live fragments alike, and the session is gone.
    session_id = console.cookies["hy_staff"].rsplit(".", 2)[0]  # itsdangerous: value.timestamp.signature
    assert await world.rt.store.redis.exists(f"hy:staffsess:{session_id}")
    out = await asyncio.to_thread(_huiyin_admin, world, "revoke-staff", "lina", "--community", "demo")
    if REAL:  # the operator's command reached the server's Redis: ended before any further request
        assert "1 open console session(s) ended" in out
        assert not await world.rt.store.redis.exists(f"hy:staffsess:{session_id}")
    page = await console.get("/staff/queue")
    assert page.status_code == 303 and page.headers["location"].startswith("/staff/login")
    live = await console.get("/staff/queue/live", headers={"HX-Request": "true"})
    assert live.status_code == 401
    assert not await world.rt.store.redis.exists(f"hy:staffsess:{session_id}")
    # Granted again, the old cookie stays dead; a new login works.
    await asyncio.to_thread(_huiyin_admin, world, "grant-staff", "lina", "--community", "demo")
    assert (await console.get("/staff/queue")).status_code == 303
    assert (await login(console, "lina")).status_code == 303


async def test_a_login_without_any_community_is_refused_like_a_wrong_password(
    world: World, console: httpx.AsyncClient
) -> None:
    await asyncio.to_thread(_huiyin_admin, world, "revoke-staff", "zhao", "--community", "laoyuan")
    answer = await login(console, "zhao")
    assert answer.status_code == 401 and "用户名或密码不正确" in answer.text


async def test_ending_an_accounts_sessions_logs_out_every_browser(world: World) -> None:
    """What `revoke-staff` does to the server's Redis when the last community goes."""
    from bot.staff.auth import end_sessions_of

    async with client_from(world, "198.51.100.30") as desk, client_from(world, "198.51.100.31") as laptop:
        for browser in (desk, laptop):
            assert await attempt(browser, "lina", PASSWORD) == 303
            assert (await browser.get("/staff/queue")).status_code == 200
        async with client_from(world, "198.51.100.32") as colleague:
            assert await attempt(colleague, "zhao", PASSWORD) == 303
            assert await end_sessions_of(world.rt.store.redis, world.lina.id) == 2
            assert (await colleague.get("/staff/queue")).status_code == 200
        for browser in (desk, laptop):
            assert (await browser.get("/staff/queue")).status_code == 303


async def test_a_stale_login_form_is_explained_in_chinese(world: World) -> None:
    async with client_from(world, "198.51.100.40") as client:
        page = await client.get("/staff/login")
        assert "huiyin admin" not in page.text  # no operator's command on the staff's login page
        client.cookies.clear()  # the form's cookie is gone (expired, another tab logged in)
        answer = await post_login(client, _hidden(page.text, "csrf"), "lina", PASSWORD)
    assert answer.status_code == 403 and answer.text == "页面已过期，请刷新后重试。"
