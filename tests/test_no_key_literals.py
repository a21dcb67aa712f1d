"""Redis key names are built by ``bot.state.Keys`` only: a module that spells one itself (a ``"hy:..."``
literal, the key prefix) escapes the test that pins the names and a rename that must reach every use."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("bot", "integrations", "kb")
KEY_BUILDER = ROOT / "bot" / "state"
# A string literal that starts with the key prefix, or the prefix constant itself (``f"{PREFIX}:..."``).
# Prose in a docstring that merely names a key (``hy:inbox:...`` after other words) does not match.
KEY_LITERAL = re.compile(r"""(?<![\w`])[rRbBfF]{0,2}(['"])hy:|\bPREFIX\b""")


def key_literals(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if KEY_LITERAL.search(line)]


def test_the_scan_finds_a_key_built_by_hand() -> None:
    assert key_literals('    return f"hy:staffsess:{session_id}"')
    assert key_literals("""    return f"hy:{{staff-login}}:user:{username}\"""")
    assert key_literals("""    name = f"{PREFIX}:wx:nonce:{ts}:{nonce}\"""")
    assert key_literals("""    QUEUE = 'hy:notices'""")
    assert key_literals("from bot.state import PREFIX, Keys")
    assert not key_literals("    claims ``hy:{prefix}:answered:...`` with SET NX")
    assert not key_literals("IPV6_LIMIT_PREFIX = 64")


def test_no_module_outside_the_key_builder_spells_a_redis_key() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {line}"
        for root in SCANNED
        for path in sorted((ROOT / root).rglob("*.py"))
        if KEY_BUILDER not in path.parents
        for line in key_literals(path.read_text(encoding="utf-8"))
    ]
    assert not found, "build these with bot.state.Keys:\n" + "\n".join(found)
