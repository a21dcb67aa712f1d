"""What staff must never read in the console: codes as the database stores them, developer words, JSON and
Python reprs. Shared by the page test (HTML through the test client) and the browser test (visible text).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Each pattern is a kind of developer text; case matters ("Telegram" is a label, "telegram" a code).
DEVELOPER_TEXT = [
    r"\b(rest|telegram|wechat|wecom|web|terminal)\b",  # platform codes
    r"\b(resident|staff|leader):\d+",  # actor codes
    r"\b(huiyin|backend|bot|system)\b",  # actors that are parts of the system
    r"\b[a-z]+\.[a-z_]+\b",  # audit actions: handoff.take, appeals.export, chat.bind_staff
    r"\b(status|note|rating|comment|supporter|forwarded|overdue|flag)\b",  # appeal event kinds
    r"\b(submitted|accepted|assigned|in_progress|resolved|rejected|closed|reopened)\b",  # appeal statuses
    r"\b(waiting|active|released|auto|private|group|console|chat|cli|via|chars|handoff)\b",
    r"\b[a-z]+_[a-z_]+\b",  # snake_case codes: canned_reply, not_understood, backend_status
    r"[{}\[\]]",  # JSON and Python lists
    r"\b(None|True|False|null|undefined|NaN)\b",
    r"<[A-Za-z]",  # a Python repr (<Appeal object at …>) or markup shown as text
]
# Latin words staff may read: a platform's name. Chat commands ("/reply") are instructions, left out first.
ALLOWED_WORDS = {"Telegram"}


def developer_text(text: str) -> list[str]:
    """The developer strings found in ``text`` (empty when staff could read all of it)."""
    # A link in a message the bot sent (the privacy page) is something staff read as a link.
    text = re.sub(r"https?://\S+", "", text)
    found = [m.group() for pattern in DEVELOPER_TEXT for m in re.finditer(pattern, text)]
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"/[a-z]+", "", text))
    return found + [w for w in words if w not in ALLOWED_WORDS]


# Attributes whose text a browser shows: tooltips, placeholders, the question a confirm() asks.
SHOWN_ATTRIBUTES = {"title", "placeholder", "aria-label", "data-confirm", "alt"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self.parts += [value for name, value in attrs if name in SHOWN_ATTRIBUTES and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def shown_text(html: str) -> str:
    """What a page's HTML shows a reader: its text (no scripts or styles) and its shown attributes."""
    parser = _Text()
    parser.feed(html)
    return "\n".join(p.strip() for p in parser.parts if p.strip())
