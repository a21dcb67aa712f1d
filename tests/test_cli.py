"""The ``huiyin`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.settings import Settings
from bot.terminal import TerminalSession


def variable_of(setting: str) -> str:
    """The environment variable documented for ``setting`` (written out here, not taken from the code
    under test): the plain URL names for the two URLs, else ``HUIYIN_`` + the name in capitals."""
    plain = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}
    return plain.get(setting, f"HUIYIN_{setting.upper()}")


def test_serve_help_documents_every_setting() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for var in map(variable_of, Settings.model_fields):
        assert var in result.output, var
    assert "--host" in result.output and "--port" in result.output


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for var in map(variable_of, Settings.model_fields):
        assert var in readme, var


def test_db_upgrade_creates_the_embedded_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUIYIN_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "huiyin.db").exists()


def test_terminal_session_switches_speakers_and_answers_buttons_by_number() -> None:
    from bot.cli import chat  # noqa: F401  (the command exists)
    from bot.message import Button, ChatType, Reply
    from bot.terminal import _command

    session = TerminalSession(group_id="g", group_title="3栋群", speaker="王阿姨")
    assert session.message("你好").chat_type is ChatType.GROUP
    _command(session, ":as 李先生")
    _command(session, ":private")
    msg = session.message("hi")
    assert msg.sender_name == "李先生" and msg.chat_type is ChatType.PRIVATE and msg.chat_id == msg.sender_id
    session.render(Reply("请确认", chat_id=msg.chat_id, recipient_id=msg.sender_id,
                         buttons=(Button("确认提交", "/confirm"), Button("取消", "/cancel"))))  # fmt: skip
    assert session.message("2").text == "/cancel"


def test_terminal_chat_files_an_appeal_end_to_end(tmp_path: Path) -> None:
    """`huiyin chat` as a person uses it: lines typed on standard input, replies printed."""
    import os
    import re
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUIYIN_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env["HUIYIN_DATA_DIR"] = str(tmp_path)
    lines = [
        "今天天气真好",  # chatter: the bot stays quiet
        "@回音 3栋2单元楼道灯坏了",
        "1",  # the first button: skip the photo
        ":private",
        "13812345678",
        "1",  # 确认提交
        ":quit",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "回音 [群] @王阿姨" in out
    assert "回音 [私聊→王阿姨]" in out and "手机号" in out
    assert re.search(r"HY-\d{8}-\d{4}", out), out
