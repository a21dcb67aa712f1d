"""Multi-turn building-group transcripts (bench/data/group_dialogs.yml) scored end to end through the real
turn pipeline: each transcript in a fresh embedded runtime (in-process Redis, SQLite in a temporary
directory), every turn handled by :meth:`bot.turn.TurnPipeline.handle`, its replies checked against the
turn's expectations (see the data file's header for the vocabulary).

    python -m bench.group_dialogs [--rasa-url URL] [--show-misses]   (also run by bench.nlu_bench)

What the replies say is read from the wording the bot itself uses (dialogs/responses.yml): "asks for the
photo" is a reply containing the photo question's text, so rewording a prompt does not break the set.
The first contact a reply names is read from the demo community's contact names (each matter's first
contact and escalation, rendered for the community) after "先找：" or "由…负责".
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from bench.product_sets import pct
from bot.dialog.spec import Responses, load_bundle
from bot.message import ChatType, IncomingMessage, Platform, Reply, Target
from bot.nlu.base import NLUBackend
from bot.runtime import Runtime
from bot.settings import Settings
from kb import KnowledgeBase

GROUP_DIALOGS = Path(__file__).resolve().parent / "data" / "group_dialogs.yml"
GROUP_ID = "bench-group"
GROUP_TITLE = "幸福里3栋业主群"
COMMUNITY = "demo"

# A form's steps → the wording keys whose text asks for them (a first ask or a repeat after a wrong answer).
FORM_STEPS: dict[str, tuple[str, ...]] = {
    "description": ("appeal.ask_description", "appeal.description_invalid"),
    "place": ("appeal.ask_place", "appeal.place_invalid"),
    "photo": ("appeal.ask_photo", "appeal.photo_invalid"),
    "phone": ("appeal.ask_contact", "appeal.ask_contact_saved", "appeal.contact_invalid"),
    "confirm": ("appeal.summary", "appeal.confirm_invalid"),
}
FILED = "appeal.created"
EMERGENCY_MARK = "【紧急】"  # the knowledge base's safety answers start with it
CONTACT_MARKERS = ("先找：", "联系方式：", "初步判断：一般由", "初步判断由")

EXPECT_KEYS = frozenset(
    {
        "silent",
        "answered",
        "asks",
        "form_started",
        "party",
        "emergency",
        "filed",
        "private",
        "max_group_lines",
        "contains",
        "lacks",
    }
)


@dataclass(frozen=True, slots=True)
class Turn:
    who: str
    text: str
    private: bool = False
    mention: bool = False
    reply_to_bot: bool = False
    expect: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupDialog:
    id: str
    about: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True, slots=True)
class DialogSet:
    residents: dict[str, str]
    dialogs: tuple[GroupDialog, ...]


def load_dialogs(path: Path = GROUP_DIALOGS) -> DialogSet:
    """The transcripts; raises ValueError on an unknown resident, chat or expectation."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    residents = {str(k): str(v) for k, v in doc["residents"].items()}
    dialogs = []
    for d in doc["dialogs"]:
        turns = []
        for n, t in enumerate(d["turns"], start=1):
            where = f"{path.name}: {d['id']} turn {n}"
            if t.get("who") not in residents:
                raise ValueError(f"{where}: unknown resident {t.get('who')!r}")
            if t.get("chat", "group") not in ("group", "private"):
                raise ValueError(f"{where}: chat must be group or private")
            expect = dict(t.get("expect") or {})
            unknown = set(expect) - EXPECT_KEYS
            if unknown:
                raise ValueError(f"{where}: unknown expectations {sorted(unknown)}")
            if "asks" in expect and expect["asks"] not in FORM_STEPS:
                raise ValueError(f"{where}: asks must be one of {sorted(FORM_STEPS)}")
            turns.append(
                Turn(
                    who=t["who"],
                    text=str(t["text"]),
                    private=t.get("chat") == "private",
                    mention=bool(t.get("mention")),
                    reply_to_bot=bool(t.get("reply_to_bot")),
                    expect=expect,
                )
            )
        dialogs.append(GroupDialog(str(d["id"]), str(d.get("about", "")), tuple(turns)))
    ids = [d.id for d in dialogs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path.name}: duplicate dialog ids")
    return DialogSet(residents, tuple(dialogs))


def _prefix(template: str) -> str:
    """The fixed text of a wording up to its first placeholder, first line only."""
    return template.split("{", 1)[0].strip().splitlines()[0].strip()


class Reader:
    """Reads what a turn's replies do: which form step they ask for, whom they name first, …"""

    def __init__(self, words: Responses, kb: KnowledgeBase, community: str = COMMUNITY) -> None:
        self.steps = {step: tuple(_prefix(words.get(k)) for k in keys) for step, keys in FORM_STEPS.items()}
        self.filed = _prefix(words.get(FILED))
        self.emergency_words = _prefix(words.get("emergency"))
        names: dict[str, str] = {}
        for matter in kb.matters():
            answer = kb.answer(matter.id, community)
            for c in (answer.first_contact, *answer.escalation):
                names.setdefault(c.name, f"{c.party}:{c.sub}" if c.sub else c.party)
        self.names = sorted(names.items(), key=lambda item: -len(item[0]))  # longest name first

    def asks(self, replies: Sequence[Reply]) -> set[str]:
        return {
            step for step, texts in self.steps.items() if any(t in r.text for r in replies for t in texts)
        }

    def party(self, replies: Sequence[Reply]) -> str | None:
        """The first contact named after a contact marker in the first reply that has one."""
        for r in replies:
            for marker in CONTACT_MARKERS:
                at = r.text.find(marker)
                if at < 0:
                    continue
                rest = r.text[at + len(marker) :]
                for name, code in self.names:
                    if rest.startswith(name):
                        return code
        return None

    def emergency(self, replies: Sequence[Reply]) -> bool:
        return any(EMERGENCY_MARK in r.text or self.emergency_words in r.text for r in replies)

    def is_filed(self, replies: Sequence[Reply]) -> bool:
        return any(self.filed in r.text for r in replies)


def group_lines(replies: Sequence[Reply]) -> int:
    """Lines the group sees: replies into the group chat, buttons as numbered options."""
    return sum(
        len(r.as_text().splitlines()) for r in replies if r.target is Target.CHAT and r.chat_id == GROUP_ID
    )


def check_turn(turn: Turn, replies: Sequence[Reply], reader: Reader) -> list[str]:
    """What the replies fail of the turn's expectations (empty: the turn is right)."""
    e = turn.expect
    failed = []
    if e.get("silent") and replies:
        failed.append("silent")
    if e.get("answered") and not replies:
        failed.append("answered")
    asks = reader.asks(replies)
    if "asks" in e and e["asks"] not in asks:
        failed.append(f"asks {e['asks']}")
    if e.get("form_started") and not asks:
        failed.append("form started")
    if "party" in e and reader.party(replies) != e["party"]:
        failed.append(f"party {e['party']} (got {reader.party(replies)})")
    if "emergency" in e and reader.emergency(replies) != bool(e["emergency"]):
        failed.append("emergency" if e["emergency"] else "no emergency")
    if e.get("filed") and not reader.is_filed(replies):
        failed.append("filed")
    if e.get("private"):
        private = [r for r in replies if r.target is Target.PRIVATE or r.chat_id != GROUP_ID]
        if not private:
            failed.append("private")
    if "max_group_lines" in e and group_lines(replies) > int(e["max_group_lines"]):
        failed.append(f"≤ {e['max_group_lines']} group lines (got {group_lines(replies)})")
    for text in e.get("contains") or ():
        if not any(text in r.text for r in replies):
            failed.append(f"contains {text!r}")
    for text in e.get("lacks") or ():
        if any(text in r.text for r in replies):
            failed.append(f"lacks {text!r}")
    return failed


def message(turn: Turn, residents: dict[str, str], dialog_id: str, n: int) -> IncomingMessage:
    """The turn as the REST channel would deliver it: in the group, or in the resident's private chat."""
    group = not turn.private
    return IncomingMessage(
        platform=Platform.REST,
        chat_id=GROUP_ID if group else turn.who,
        chat_type=ChatType.GROUP if group else ChatType.PRIVATE,
        sender_id=turn.who,
        sender_name=residents[turn.who],
        text=turn.text,
        message_id=f"{dialog_id}-{n}",
        mentions_bot=turn.mention,
        reply_to_bot=turn.reply_to_bot,
        chat_title=GROUP_TITLE if group else "",
    )


@dataclass
class TurnResult:
    dialog: str
    n: int
    turn: Turn
    replies: list[Reply]
    failed: list[str]


@dataclass
class GroupScore:
    name: str
    results: list[TurnResult] = field(default_factory=list)

    @property
    def turns_right(self) -> int:
        return sum(not r.failed for r in self.results)

    def dialogs(self) -> dict[str, bool]:
        right: dict[str, bool] = {}
        for r in self.results:
            right[r.dialog] = right.get(r.dialog, True) and not r.failed
        return right


async def run_dialog(
    dialog: GroupDialog, residents: dict[str, str], nlu: NLUBackend, reader: Reader, data_dir: Path
) -> list[TurnResult]:
    """One transcript in a fresh runtime on the embedded defaults under ``data_dir``."""
    runtime = await Runtime.start(Settings(data_dir=data_dir, database_url=None, redis_url=None), nlu=nlu)
    results = []
    try:
        for n, turn in enumerate(dialog.turns, start=1):
            replies = await runtime.dispatcher.handle(message(turn, residents, dialog.id, n))
            results.append(TurnResult(dialog.id, n, turn, replies, check_turn(turn, replies, reader)))
    finally:
        await runtime.close()
    return results


async def score_dialogs(name: str, nlu: NLUBackend, kb: KnowledgeBase, dialogs: DialogSet) -> GroupScore:
    reader = Reader(load_bundle().responses, kb)
    score = GroupScore(name)
    with tempfile.TemporaryDirectory() as tmp:
        for i, dialog in enumerate(dialogs.dialogs):
            score.results += await run_dialog(dialog, dialogs.residents, nlu, reader, Path(tmp) / str(i))
    return score


def print_groups(scores: Sequence[GroupScore], show_misses: bool) -> None:
    first = scores[0]
    n_dialogs = len(first.dialogs())
    print(
        f"\ngroup transcripts (bench/data/group_dialogs.yml): {n_dialogs} transcripts, "
        f"{len(first.results)} turns, through the turn pipeline (embedded runtime)"
    )
    header = f"{'backend':<22}{'turns right':<22}{'transcripts fully right':<26}"
    print(header)
    print("-" * len(header))
    for s in scores:
        dialogs = s.dialogs()
        print(
            f"{s.name:<22}{pct(s.turns_right, len(s.results)):<22}{pct(sum(dialogs.values()), len(dialogs)):<26}"
        )
    for s in scores:
        wrong = [r for r in s.results if r.failed]
        if not wrong:
            continue
        print(f"{s.name}: wrong turns:")
        for r in wrong:
            print(f"  {r.dialog} #{r.n} [{r.turn.who}] {r.turn.text}: wanted {', '.join(r.failed)}")
            if show_misses:
                for reply in r.replies:
                    print(f"      ← {reply.text[:100].replace(chr(10), ' / ')}")


def main(argv: list[str] | None = None) -> int:
    from bot.logs import configure_logging
    from bot.nlu.embedded import build
    from kb import load_knowledge_base

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialogs", type=Path, default=GROUP_DIALOGS)
    parser.add_argument("--rasa-url", default=None, help="also run the transcripts with a Rasa server's NLU")
    parser.add_argument("--show-misses", action="store_true", help="print the replies of wrong turns")
    args = parser.parse_args(argv)
    configure_logging("error")
    dialogs = load_dialogs(args.dialogs)
    kb = load_knowledge_base()
    with tempfile.TemporaryDirectory() as tmp:
        nlu = build(Path(tmp))
    scores = [asyncio.run(score_dialogs("embedded", nlu, kb, dialogs))]
    if args.rasa_url:
        from integrations.rasa.adapter import RasaNLU

        async def rasa_run() -> GroupScore:
            rasa = RasaNLU(args.rasa_url, timeout_s=5.0)
            try:
                return await score_dialogs("rasa", rasa, kb, dialogs)
            finally:
                await rasa.aclose()

        scores.append(asyncio.run(rasa_run()))
    print_groups(scores, args.show_misses)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
