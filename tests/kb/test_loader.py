"""The YAML loader keeps the line of every key and item, so that errors can name file:line."""

from __future__ import annotations

from pathlib import Path

from kb.loader import LinedDict, LinedList, line_of, load


def test_records_keep_their_lines(tmp_path: Path) -> None:
    (tmp_path / "matters").mkdir()
    (tmp_path / "communities").mkdir()
    (tmp_path / "matters" / "x.yml").write_text(
        "# comment\n- id: a_matter\n  title: 测试\n  examples:\n    - 一\n    - 二\n",
        encoding="utf-8",
    )
    result = load(tmp_path)
    # The matter is invalid (fields missing), so it is reported, at its own line.
    assert any(e.startswith(f"{tmp_path / 'matters' / 'x.yml'}:2:") for e in result.errors), result.errors
    assert any(":4:" in e and "examples" in e for e in result.errors), result.errors


def test_line_of_walks_keys_and_items() -> None:
    inner = LinedList(["a", "b"])
    inner.line, inner.lines = 5, [5, 6]
    raw = LinedDict({"examples": inner, "title": "t"})
    raw.line, raw.lines = 2, {"examples": 4, "title": 3}
    assert line_of(raw, ["title"]) == 3
    assert line_of(raw, ["examples"]) == 4
    assert line_of(raw, ["examples", 1]) == 6
    assert line_of(raw, ["missing", 0]) == 2


def test_shipped_records_have_locations() -> None:
    result = load()
    assert result.errors == []
    for located in result.matters:
        assert located.path.suffix == ".yml" and located.line >= 1
        assert located.raw["id"] == located.value.id
