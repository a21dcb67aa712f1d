"""The real-appeals evaluation data: it loads, its split is fixed, its labels read what replies name."""

from __future__ import annotations

from pathlib import Path

from bench.real_appeals import (
    DATA,
    PARTY_PATTERNS,
    adapted_ids,
    derive,
    evaluation_rows,
    load,
    reply_parties,
    supervision_rows,
    write,
)
from kb.model import DepartmentSub, Party, UtilitySub


def test_committed_data_loads_with_its_labels() -> None:
    appeals = load()
    assert len(appeals) == 3157
    assert len({a.id for a in appeals}) == len(appeals)
    with_reply = [a for a in appeals if a.has_reply]
    assert len(with_reply) == 949
    assert all(not a.parties for a in appeals if not a.has_reply)
    # Most replies name a party huiyin has a code for.
    assert sum(bool(a.parties) for a in with_reply) > 650
    assert all(a.detail for a in appeals)


def test_split_is_by_parity_of_the_id_disjoint_and_complete() -> None:
    sup, ev = supervision_rows(), evaluation_rows()
    assert all(a.id % 2 == 0 for a in sup) and all(a.id % 2 == 1 for a in ev)
    assert not {a.id for a in sup} & {a.id for a in ev}
    assert len(sup) + len(ev) == len(load())
    # Stable: the same ids on a second read, and ids known from the release stay on their side.
    assert [a.id for a in evaluation_rows()] == [a.id for a in ev]
    assert 2549 in {a.id for a in ev} or 2549 in {a.id for a in sup}
    assert next(a for a in load() if a.id == 2549).supervision is False


def test_every_label_code_is_a_huiyin_party() -> None:
    subs = {"department": set(DepartmentSub), "utility": set(UtilitySub)}
    for code in PARTY_PATTERNS:
        party, _, sub = code.partition(":")
        assert Party(party)
        if sub:
            assert sub in subs[party], code


def test_reply_parties_reads_actors_not_addresses_nor_quotes() -> None:
    reply = (
        "关于您反映“A2区某小区物业乱收费”的问题，位于桂花坪街道的该小区已由区住房和城乡建设局调查，"
        "社区工作人员已上门协调，A市人民政府高度重视。"
    )
    found = reply_parties(reply)
    assert set(found) == {"department:housing", "community"}  # not property (quoted), street (address)
    assert "department:civil_affairs" not in found  # 人民政府 is not 民政
    assert reply_parties("桂花坪街道已组织物业公司整改") == {"street": "街道已", "property": "物业"}


def test_accepts_a_first_contact_named_by_the_reply() -> None:
    (appeal,) = derive(
        [
            {
                "source": "附件4",
                "id": "7",
                "topic": "t",
                "detail": "d",
                "reply": "经区城管局核实，已责令物业整改",
            }
        ]
    )
    assert appeal.parties == {"department:urban_management", "property"}
    assert appeal.accepts("property", None)
    assert appeal.accepts("department", "urban_management")
    assert not appeal.accepts("department", "housing")
    assert not appeal.accepts("department", None)
    assert not appeal.accepts(None, None)


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    rows = [
        {"source": "附件3", "id": "12", "topic": "噪音", "detail": "楼上很吵，\n# 夜里也吵", "reply": ""},
        {"source": "附件4", "id": "3", "topic": "漏水", "detail": "楼上漏水", "reply": "供水公司已维修"},
    ]
    path = tmp_path / "a.csv"
    write(derive(rows), path)
    loaded = load(path)
    assert [a.id for a in loaded] == [3, 12]
    assert loaded[0].parties == {"utility:water"} and loaded[1].parties == frozenset()
    assert loaded[1].detail == "楼上很吵，\n# 夜里也吵"
    assert [a.id for a in supervision_rows(path)] == [12]
    assert path.read_text(encoding="utf-8").startswith("#")
    assert DATA.is_file()


def test_adapted_ids_reads_the_sources_of_a_set(tmp_path: Path) -> None:
    path = tmp_path / "set.yml"
    path.write_text(
        "messages:\n- {intent: report, party: property, source: teddy2020c/a3a4#263217, text: 电梯坏了}\n"
        "- {intent: report, party: property, text: 楼道灯坏了}\n",
        encoding="utf-8",
    )
    assert adapted_ids(path) == {263217}
    assert len(adapted_ids()) >= 150  # the development set adapts real appeals of both halves
