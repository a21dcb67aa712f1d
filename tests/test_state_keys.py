"""Every Redis key family keeps its exact name: a deployment upgraded in place must find its data (dialogs,
held markers, console sessions, login counters, claims) under the names the previous version wrote."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.message import Platform
from bot.staff.proxies import limit_key
from bot.state import DIALOGS_COMPLETE, HELD_COMPLETE, ConversationKey, Keys

CONV = ConversationKey(Platform.WECHAT, "g1", "u1")

FAMILIES: list[tuple[str, Callable[[], str], str]] = [
    ("dialog state", lambda: Keys.state(CONV), "hy:{wechat:g1:u1}:dlg"),
    ("dialog state by stored key", lambda: Keys.state("wechat:g1:u1"), "hy:{wechat:g1:u1}:dlg"),
    ("conversation lock", lambda: Keys.lock(CONV), "hy:{wechat:g1:u1}:lock"),
    ("dedup record", lambda: Keys.seen(CONV, "m1"), "hy:{wechat:g1:u1}:seen:m1"),
    ("held marker", lambda: Keys.held(CONV), "hy:{wechat:g1:u1}:held"),
    ("rating comment", lambda: Keys.rating_comment(CONV), "hy:{wechat:g1:u1}:rating-comment"),
    ("offer cooldown", lambda: Keys.offer(CONV), "hy:{wechat:g1:u1}:offer"),
    ("chat settings", lambda: Keys.chat_settings(Platform.TELEGRAM, "-100"), "hy:{telegram:-100}:chat"),
    ("dialogs complete", lambda: DIALOGS_COMPLETE, "hy:dlg:complete"),
    ("held complete", lambda: HELD_COMPLETE, "hy:held:complete"),
    ("complete marker in a slot", lambda: Keys.slot_copy(HELD_COMPLETE, 0), "hy:{s7920}:held:complete"),
    ("staff notices", lambda: Keys.NOTICES, "hy:notices"),
    ("relay draft", lambda: Keys.relay_draft(Platform.REST, "s1"), "hy:relay:rest:s1"),
    ("invite failures", lambda: Keys.invite_failures(Platform.REST, "s1"), "hy:invitefail:rest:s1"),
    ("inbox", lambda: Keys.channels.inbox(Platform.REST, "r1"), "hy:inbox:rest:r1"),
    ("telegram button", lambda: Keys.channels.telegram_button("t0k"), "hy:btn:tg:t0k"),
    ("numbered options", lambda: Keys.channels.options(Platform.WECOM, "c1", "u1"), "hy:btn:wecom:c1:u1"),
    ("wechat access token", lambda: Keys.channels.wechat_token("app1"), "hy:wx:token:app1"),
    (
        "wecom access token",
        lambda: Keys.channels.wecom_token("corp1", 1000002),
        "hy:wecom:token:corp1:1000002",
    ),
    (
        "telegram done",
        lambda: Keys.channels.sent("tg", CONV, "m1"),
        "hy:{wechat:g1:u1}:tg:done:m1",
    ),
    (
        "telegram claim",
        lambda: Keys.channels.send_claim("tg", CONV, "m1"),
        "hy:{wechat:g1:u1}:tg:claim:m1",
    ),
    (
        "wechat passive claim",
        lambda: Keys.channels.passive_claim("wx", CONV, "m1"),
        "hy:{wechat:g1:u1}:wx:answered:m1",
    ),
    (
        "wecom passive claim",
        lambda: Keys.channels.passive_claim("wecom", CONV, "m1"),
        "hy:{wechat:g1:u1}:wecom:answered:m1",
    ),
    (
        "wechat plaintext nonce",
        lambda: Keys.channels.wechat_nonce("1700000000", "n0nce"),
        "hy:wx:nonce:1700000000:n0nce",
    ),
    ("console session", lambda: Keys.staff.session("abc"), "hy:staffsess:abc"),
    ("console sessions of an account", lambda: Keys.staff.sessions_of(7), "hy:staffsess:of:7"),
    (
        "login counter of a client",
        lambda: Keys.staff.login_client(limit_key("203.0.113.9")),
        "hy:{staff-login}:client:203.0.113.9",
    ),
    (
        "login counter of an IPv6 client",
        lambda: Keys.staff.login_client(limit_key("2001:db8::1")),
        "hy:{staff-login}:client:2001:db8::/64",
    ),
    ("login counter of a name", lambda: Keys.staff.login_user("wang"), "hy:{staff-login}:user:wang"),
]


@pytest.mark.parametrize(
    ("build", "expected"), [(b, e) for _, b, e in FAMILIES], ids=[n for n, _, _ in FAMILIES]
)
def test_key_names_are_unchanged(build: Callable[[], str], expected: str) -> None:
    assert build() == expected
