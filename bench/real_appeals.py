"""Real citizen appeals as an evaluation set: long, messy texts with a (noisy) label of who handled them.

The appeals are the public TipDM Cup 2020 problem C release ("智慧政务": messages citizens posted on a
provincial online appeal platform, 2011–2020, place names anonymised as "A市", "K1区"), the subset that
mentions residential matters. ``bench/data/real_appeals.csv`` holds what the benchmark needs, derived
from that release by :func:`derive` (``python -m bench.real_appeals --from-csv PATH`` rewrites it):

- every row: ``id``, ``source`` (附件3: no reply; 附件4: the government's reply is known), ``topic``
  (the appeal's title), ``detail`` (its text, as the citizen wrote it);
- rows with a reply: ``parties``, the set of huiyin party codes that the reply names as handling the case
  (``property``, ``department:housing``, ``utility:water`` …), and ``evidence``, the words of the reply
  each code was read from, to audit the label.

**The label is noisy.** It is read from the reply's words by :data:`PARTY_PATTERNS`, not by a person:

- a party the reply names as *not* responsible, or only as the subject of the complaint ("开发商至今未
  整改"), counts as named; a 物业 told "to rectify" is named, which is right (it is who acts);
- place names are stripped where they are easy to tell apart ("XX街道的XX小区" is an address, "XX街道
  已组织…" an actor: only actor forms of 街道 / 社区 count, see :data:`PARTY_PATTERNS`);
- the quoted restatement of the appeal (“…”, which repeats its title) is removed before matching, so the
  citizen's own words do not label the reply;
- bodies huiyin has no code for (区政府, 财政局, 发改委 …) are dropped, and a reply naming only those has
  an empty label set and is not scored;
- the reply shows who *handled* the case, which is often the district department it was forwarded to,
  while huiyin's first contact is who a resident should go to *first* (often the 物业 or the 社区): the
  label is "a party that did act on it", so a first contact among them is defensible, one outside them
  is not necessarily wrong. Use the figure to compare backends and versions, not as an absolute accuracy;
- read by hand, 18 of 30 random (party, reply) pairs of the supervision half named a body that acted on
  the case, 12 one named only as background (the estate's developer, the company complained about, the
  author of a rule).

**Fixed split**: rows with an even numeric id are the *supervision* half (may be used to write rules,
examples or train), rows with an odd id the *evaluation* half (never used for rules or examples; only
scored). The split does not depend on the label, so it is stable when the label mapping changes.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DATA = Path(__file__).resolve().parent / "data" / "real_appeals.csv"

SOURCE_WITH_REPLY = "附件4"

# Each party code (``party`` or ``party:sub`` as in kb/model.py) with the reply words that name it.
# Order does not matter; every code whose pattern matches is in the label set.
PARTY_PATTERNS: dict[str, re.Pattern[str]] = {
    "property": re.compile(r"物业(?!管理条例|管理办法|服务收费管理办法|费收费标准)|物管"),
    "owners_committee": re.compile(r"业委会|业主委员会|业主大会"),
    # 社区 / 街道 are also parts of addresses ("东澜湾社区", "桂花坪街道的XX小区"): only actor forms count.
    "community": re.compile(
        r"居委会|居民委员会|社区(?:居委会|工作站|工作人员|干部|党委|党支部|党总支|网格|书记|主任|负责人|"
        r"已|立即|及时|高度|牵头|组织|联合|协调|会同|上门|到现场|现场|调查|核实|调解|召开|将|会|正在|多次|"
        r"积极|督促|安排|负责|回复|了解)"
    ),
    "street": re.compile(
        r"街道办|街道(?:工作人员|干部|党工委|城管|执法|社区|联合|已|立即|及时|高度|牵头|组织|协调|会同|"
        r"调查|核实|召开|将|会|正在|多次|积极|督促|安排|负责|回复|了解|派|综治|城建|办事处)|乡镇政府|镇政府|"
        r"镇人民政府|乡人民政府"
    ),
    "developer": re.compile(r"开发商|开发公司|开发企业|开发有限|开发建设|建设单位|房地产开发|置业|地产公司"),
    "department:urban_management": re.compile(r"城管|城市管理|综合执法|行政执法|执法局|执法大队|执法中队"),
    "department:traffic_police": re.compile(r"交警|交通警察|交通管理|交巡警"),
    "department:police": re.compile(r"公安(?!消防)|派出所|民警|警方"),
    "department:environment": re.compile(r"环保|生态环境|环境保护|环境监测"),
    "department:housing": re.compile(
        r"住建|住房和城乡建设|住房城乡建设|住房保障|房产局|房管|房屋管理|房地产管理|建设局|质量安全监督站|质监站|建管站"
    ),
    "department:fire_rescue": re.compile(r"消防(?:救援|大队|支队|中队|部门|机构)|公安消防"),
    "department:market_regulation": re.compile(
        r"市场监督|市场监管|工商|质监(?!站)|质量技术监督|物价局|价格监督"
    ),
    "department:health": re.compile(r"卫健|卫计|卫生健康|卫生和计划生育|卫生局|卫生监督|疾控"),
    "department:education": re.compile(r"教育局|教体局|教育行政|教育部门|教育和体育局|教育体育局"),
    "department:natural_resources": re.compile(r"自然资源|国土|规划局|规划部门|规划分局|规划和"),
    "department:water_affairs": re.compile(r"水务局|水利局|水务部门|排水公司|排水管理"),
    "department:landscaping": re.compile(r"园林"),
    "department:human_resources": re.compile(r"人社|人力资源和社会保障|劳动保障监察|劳动监察"),
    "department:civil_affairs": re.compile(r"(?<!人)民政"),
    "department:transport": re.compile(r"交通运输局|运管|交通局|公交公司|公交集团"),
    "department:real_estate_registration": re.compile(r"不动产登记"),
    "department:judicial": re.compile(r"司法局|司法所|法律援助"),
    "department:medical_insurance": re.compile(r"医保|医疗保障"),
    "department:postal": re.compile(r"邮政管理"),
    "department:communications": re.compile(r"通信管理局|通管局"),
    "utility:water": re.compile(r"自来水|供水公司|供水部门|水司|水业"),
    "utility:power": re.compile(r"供电|电力公司|电业局|国网|电网"),
    "utility:gas": re.compile(r"燃气公司|燃气集团|燃气有限|天然气公司|新奥|燃气部门|燃气"),
    "utility:heating": re.compile(r"供热公司|供暖公司|热力公司"),
    "utility:telecom": re.compile(r"电信公司|移动公司|联通公司|广电网络|有线电视|宽带公司|铁塔公司"),
    "hotline": re.compile(r"12345"),
}
"""Reply words → huiyin party code. Patterns read what the reply *names*; see the module's notes on
noise. 消防 alone (消防通道, 消防设施) is not the fire service: only its bodies count."""

_QUOTED = re.compile(r"“[^”]{0,200}”|\"[^\"]{0,200}\"|《[^》]{0,60}》")


def reply_parties(reply: str) -> dict[str, str]:
    """The party codes a government reply names as handling the case, each with the words it was read
    from (the first occurrence). Quoted passages (the appeal's restated title, a law's name) are ignored."""
    text = _QUOTED.sub("", reply)
    found: dict[str, str] = {}
    for code, pattern in PARTY_PATTERNS.items():
        match = pattern.search(text)
        if match:
            found[code] = match.group(0)
    return found


@dataclass(frozen=True, slots=True)
class RealAppeal:
    """One appeal: its id, title and text, and (when the reply is known) the parties the reply names."""

    id: int
    source: str
    topic: str
    detail: str
    parties: frozenset[str]
    evidence: str = ""

    @property
    def has_reply(self) -> bool:
        return self.source == SOURCE_WITH_REPLY

    @property
    def supervision(self) -> bool:
        """Even ids: may be used for training and writing rules; odd ids are the evaluation half."""
        return self.id % 2 == 0

    def accepts(self, party: str | None, sub: str | None) -> bool:
        """Whether a first contact (party, sub) is one of the parties the reply names."""
        if party is None:
            return False
        return (f"{party}:{sub}" if sub else party) in self.parties


_HEADER = """\
# Real citizen appeals for bench/real_appeals.py (see its docstring for the label and its noise).
# Source: TipDM Cup 2020 problem C ("智慧政务"), a public competition release: messages citizens
# posted on a provincial online appeal platform (2011-2020), place names anonymised by the competition;
# this is the subset mentioning residential matters (附件3 and 附件4, whitespace-normalised). The
# government's reply itself is not kept: `parties` is derived from it (附件4 rows only), `evidence`
# gives the reply words each code was read from. Even id = supervision half, odd id = evaluation half.
# Regenerate: python -m bench.real_appeals --from-csv teddy2020C_a3a4_residential_subset.csv
"""

_COLUMNS = ("id", "source", "topic", "detail", "parties", "evidence")


def derive(rows: Iterable[dict[str, str]]) -> list[RealAppeal]:
    """Real appeals from the release's rows (columns source, id, topic, detail, reply, …)."""
    appeals = []
    for row in rows:
        named = reply_parties(row.get("reply") or "") if row["source"] == SOURCE_WITH_REPLY else {}
        appeals.append(
            RealAppeal(
                id=int(row["id"]),
                source=row["source"],
                topic=row["topic"].strip(),
                detail=row["detail"].strip(),
                parties=frozenset(named),
                evidence=" ".join(f"{code}={word}" for code, word in sorted(named.items())),
            )
        )
    appeals.sort(key=lambda a: a.id)
    return appeals


def write(appeals: Iterable[RealAppeal], path: Path = DATA) -> None:
    out = io.StringIO()
    out.write(_HEADER)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for a in appeals:
        writer.writerow((a.id, a.source, a.topic, a.detail, " ".join(sorted(a.parties)), a.evidence))
    path.write_text(out.getvalue(), encoding="utf-8")


def load(path: Path = DATA) -> list[RealAppeal]:
    """All real appeals of the committed data file, by id; raises ValueError on a malformed row."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):  # the header block only: a text may have a line starting "#"
        lines.pop(0)
    appeals = []
    for n, row in enumerate(csv.DictReader(lines), start=1):
        try:
            appeals.append(
                RealAppeal(
                    id=int(row["id"]),
                    source=row["source"],
                    topic=row["topic"],
                    detail=row["detail"],
                    parties=frozenset(row["parties"].split()),
                    evidence=row["evidence"],
                )
            )
        except (KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path.name}: row {n} is malformed: {row!r}") from exc
    return appeals


def supervision_rows(path: Path = DATA) -> list[RealAppeal]:
    """The supervision half (even ids): may be used for training, rules and examples."""
    return [a for a in load(path) if a.supervision]


def evaluation_rows(path: Path = DATA) -> list[RealAppeal]:
    """The evaluation half (odd ids): only ever scored, never used to write rules or examples."""
    return [a for a in load(path) if not a.supervision]


DEV_SET = Path(__file__).resolve().parent / "data" / "dev.yml"
_ADAPTED = re.compile(r"source:\s*teddy2020c/a3a4#(\d+)")


def adapted_ids(path: Path = DEV_SET) -> frozenset[int]:
    """Ids of the real appeals a set adapts (``source: teddy2020c/a3a4#ID``). The development set is
    tuned against, so the evaluation-half appeals it adapts have been seen, shortened, while tuning:
    the benchmark also scores the evaluation half without them."""
    return frozenset(int(m.group(1)) for m in _ADAPTED.finditer(path.read_text(encoding="utf-8")))


def summary(appeals: list[RealAppeal]) -> str:
    with_reply = [a for a in appeals if a.has_reply]
    labelled = [a for a in with_reply if a.parties]
    counts = Counter(code for a in labelled for code in a.parties)
    top = ", ".join(f"{code} {n}" for code, n in counts.most_common())
    return (
        f"{len(appeals)} appeals ({sum(a.supervision for a in appeals)} supervision, "
        f"{sum(not a.supervision for a in appeals)} evaluation); {len(with_reply)} with a reply, "
        f"{len(labelled)} of them naming a party huiyin has a code for\nparties named: {top}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--from-csv", type=Path, help="the release's residential subset CSV: rewrite the data file"
    )
    parser.add_argument("--out", type=Path, default=DATA, help="data file (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.from_csv:
        with args.from_csv.open(encoding="utf-8", newline="") as f:
            appeals = derive(csv.DictReader(f))
        write(appeals, args.out)
        print(f"wrote {args.out}")
    print(summary(load(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
