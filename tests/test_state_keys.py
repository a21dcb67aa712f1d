"""Every Redis key family keeps its exact name: a deployment upgraded in place must find its data (dialogs,
held markers, console sessions, login counters, claims) under the names the previous version wrote."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.message import Platform
from bot.staff import auth
from bot.state import DIALOGS_COMPLETE, HELD_COMPLETE, ConversationKey, Keys, StateStore

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
    ("inbox", lambda: Keys.inbox(Platform.REST, "r1"), "hy:inbox:rest:r1"),
    ("telegram button", lambda: Keys.telegram_button("t0k"), "hy:btn:tg:t0k"),
    ("numbered options", lambda: Keys.options(Platform.WECOM, "c1", "u1"), "hy:btn:wecom:c1:u1"),
    ("wechat access token", lambda: Keys.access_token("wx:token:app1"), "hy:wx:token:app1"),
    (
        "wecom access token",
        lambda: Keys.access_token("wecom:token:corp1:1000002"),
        "hy:wecom:token:corp1:1000002",
    ),
    (
        "telegram done",
        lambda: StateStore.delivery_name("tg:done", CONV, "m1"),
        "hy:{wechat:g1:u1}:tg:done:m1",
    ),
    (
        "telegram claim",
        lambda: StateStore.delivery_name("tg:claim", CONV, "m1"),
        "hy:{wechat:g1:u1}:tg:claim:m1",
    ),
    (
        "wechat passive claim",
        lambda: StateStore.delivery_name("wx:answered", CONV, "m1"),
        "hy:{wechat:g1:u1}:wx:answered:m1",
    ),
    (
        "wecom passive claim",
        lambda: StateStore.delivery_name("wecom:answered", CONV, "m1"),
        "hy:{wechat:g1:u1}:wecom:answered:m1",
    ),
    ("console session", lambda: auth._session_key("abc"), "hy:staffsess:abc"),
    ("console sessions of an account", lambda: auth._account_sessions_key(7), "hy:staffsess:of:7"),
    (
        "login counter of a client",
        lambda: auth._client_key("203.0.113.9"),
        "hy:{staff-login}:client:203.0.113.9",
    ),
    (
        "login counter of an IPv6 client",
        lambda: auth._client_key("2001:db8::1"),
        "hy:{staff-login}:client:2001:db8::/64",
    ),
    ("login counter of a name", lambda: auth._username_key("wang"), "hy:{staff-login}:user:wang"),
]


@pytest.mark.parametrize(
    ("build", "expected"), [(b, e) for _, b, e in FAMILIES], ids=[n for n, _, _ in FAMILIES]
)
def test_key_names_are_unchanged(build: Callable[[], str], expected: str) -> None:
    assert build() == expected
