"""Logs never hold a phone number, a room number or a message's text: realistic turns (group and private,
a report with phone and room in its first message, a status query, staff taking over and replying, a
failure on a message, the worker delivering the news) run with logging configured as in production, and
everything logged is searched for what residents and staff wrote."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from bot.db.models import AppealStatus
from bot.logs import MaskingFormatter, configure_logging, crash_fields, mask_numbers
from bot.message import ChatType
from bot.nlu.embedded import EmbeddedNLU
from integrations.backend.forwarder import Forwarder
from tests.staff.conftest import World
from tests.staff.test_staff_chat import STAFF_GROUP, _staff_in_chat
from tests.test_retention import finish

PHONES = ("13812345678", "13912345678", "021-62345678")
ROOM = re.compile(r"(?<![\d.])1201(?![\d.])")


@pytest.fixture(params=[True, False], ids=["json", "console"])
def production_logs(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Logging as ``huiyin serve`` configures it (JSON lines, or console text), at debug level, into a
    buffer; the previous configuration is put back afterwards."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    _forget_cached_loggers()
    configure_logging("debug", json=request.param, stream=buffer, cache=False)
    yield buffer
    structlog.configure(**saved)
    _forget_cached_loggers()


def _forget_cached_loggers() -> None:
    """Make the modules' loggers read the configuration again: one used after an earlier configuration
    that caches (a CLI command run in-process by another test) keeps that one otherwise."""
    proxy = type(structlog.get_logger())
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("bot", "integrations", "kb"):
            logger = getattr(module, "log", None)
            if isinstance(logger, proxy) and "bind" in vars(logger):
                del logger.bind


def rendered(buffer: io.StringIO) -> str:
    """Every logged line, with JSON's \\u escapes undone (so Chinese text is searchable)."""
    lines = []
    for line in buffer.getvalue().splitlines():
        try:
            lines.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            lines.append(line)
    return "\n".join(lines)


def windows(text: str, size: int = 6) -> set[str]:
    """Every run of ``size`` characters of ``text`` with words in it (a text of six or more characters
    shows itself by any of them). Appeal ids may be logged; digits alone are checked as phones and rooms."""
    text = re.sub(r"HY-\d{8}-\d{4}", " ", text).strip()
    runs = (text[i : i + size] for i in range(len(text) - size + 1))
    return {w for w in runs if not w.isascii() and not any(ch.isspace() for ch in w)}


async def test_turns_leave_no_phone_room_or_text_in_the_logs(
    world: World, production_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = world.rt
    said: list[str] = []
    answered: list[str] = []

    async def say(text: str, who: str = "res-wang", **kw: Any) -> list[str]:
        said.append(text.split(" ", 2)[-1] if text.startswith("/reply") else text)
        replies = await world.say(text, who=who, **kw)
        answered.extend(replies)
        return replies

    await _staff_in_chat(world)
    # A group report, addressed to the bot, with a neighbour's phone and the room in it.
    group = {"chat_id": "grp-3", "chat_type": ChatType.GROUP, "chat_title": "幸福里3栋业主群"}
    await say(
        "回音，3栋2单元1201厨房天花板漏水，楼上邻居电话13812345678", who="res-li", name="李先生", **group
    )
    # A private report with phone and room in the first message, through to the confirmation.
    await say("5栋1单元1201卫生间漏水到楼下了，我的电话13912345678，座机021-62345678")
    await say("跳过")
    await say("13912345678")
    confirmed = await say("/confirm")
    public_id = next(m.group(0) for r in confirmed if (m := re.search(r"HY-\d{8}-\d{4}", r)))
    # A status query.
    await say("我反映的漏水现在处理到哪一步了")
    # A failure on a message: the NLU raises with the text in the exception (UnicodeError does).
    original = EmbeddedNLU._understand

    def failing(self: EmbeddedNLU, text: str) -> Any:
        if "故障" in text:
            raise UnicodeEncodeError("utf-8", text, 0, 1, "surrogates not allowed")
        return original(self, text)

    monkeypatch.setattr(EmbeddedNLU, "_understand", failing)
    await say("楼道里的灯故障好几天了一直没人修，1201门口特别黑")
    # Staff take over and reply with the resident's room and phone in the reply.
    await say("转人工")
    conv = await world.conversation_of("res-wang")
    await say(f"/take {conv}", who="tg-lina", name="娜娜", **STAFF_GROUP)
    await say(
        f"/reply {conv} 师傅今天下午到1201室上门，请保持13912345678畅通",
        who="tg-lina",
        name="娜娜",
        **STAFF_GROUP,
    )
    await say("好的谢谢，我下午三点以后都在家")
    await world.flush_notices()
    # The appeal is resolved; the worker delivers the news (and runs its periodic jobs).
    await finish(rt, public_id, AppealStatus.RESOLVED)
    await Forwarder(rt.db, rt.settings, outbound=rt.outbound, kb=rt.kb).drain(10)
    answered.extend(r.text for r in world.sender.sent)

    logs = rendered(production_logs)
    assert "embedded nlu failed on a message" in logs, "the failure path ran and was logged"
    assert "appeal created" in logs, logs
    for phone in PHONES:
        assert phone not in logs and phone.replace("-", "") not in logs, phone
    assert not ROOM.search(logs), ROOM.search(logs)
    for text in said + answered:
        if len(text) >= 6:
            leaked = sorted(w for w in windows(text) if w in logs)
            assert not leaked, (text, leaked)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("电话13812345678", "电话138****5678"),
        ("call 138-1234-5678 now", "call 138****5678 now"),
        ("+86 139 1234 5678", "+86 139****5678"),
        ("座机021-62345678", "座机021-****5678"),
        ("0755 8765 4321", "0755 ****4321"),
        ("(010)12345678", "(010)****5678"),
        ("身份证110101199003071234", "身份证1101**********1234"),
        ("身份证11010119900307123X", "身份证1101**********123X"),
    ],
)
def test_phone_like_numbers_are_masked(raw: str, masked: str) -> None:
    assert mask_numbers(raw) == masked


@pytest.mark.parametrize(
    "kept",
    [
        "HY-20261206-0001",
        "2026-12-06T21:00:00.123456Z",
        "a1b2c3d4e5:HY-20261206-0001:create",
        "-1001234567890",  # a Telegram group id
        "1733500000123",  # a timestamp in milliseconds
        "seconds=1.234",
    ],
)
def test_ids_and_times_are_left_alone(kept: str) -> None:
    assert mask_numbers(kept) == kept


def test_every_logged_value_is_masked_exceptions_included(production_logs: io.StringIO) -> None:
    log = structlog.get_logger("test")
    try:
        raise ValueError("could not send to 13812345678")
    except ValueError:
        log.exception("failed", contact={"phones": ["13912345678"]}, note="打 13812345678")
    logs = rendered(production_logs)
    assert "13812345678" not in logs and "13912345678" not in logs
    assert "138****5678" in logs and "139****5678" in logs and "ValueError" in logs


def test_standard_library_records_are_masked() -> None:
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "bad %s", ("13812345678",), None)
    assert MaskingFormatter("%(message)s").format(record) == "bad 138****5678"


def test_a_crash_is_logged_by_class_and_place_not_by_message() -> None:
    try:
        try:
            {}["k"]
        except KeyError as inner:
            raise RuntimeError("reply 厨房漏水 to 13812345678 failed") from inner
    except RuntimeError as exc:
        fields = crash_fields(exc)
    assert fields["error"] == "RuntimeError from KeyError"
    assert "test_log_privacy.py" in fields["where"]
    assert "厨房" not in str(fields) and "1381234" not in str(fields)
