"""``huiyin kb check``: the shipped knowledge base is sound, and a broken copy is reported at file:line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.check import check_command, check_kb
from kb.loader import KB_ROOT, load


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    shutil.copytree(KB_ROOT / "matters", root / "matters")
    shutil.copytree(KB_ROOT / "communities", root / "communities")
    return root


def line_of(path: Path, needle: str, after: str | None = None) -> int:
    """1-based line of the first line containing ``needle`` (after the line containing ``after``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line) + 1
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def errors_at(errors: list[str], path: Path, line: int) -> list[str]:
    return [e for e in errors if e.startswith(f"{path}:{line}:")]


def test_shipped_kb_passes() -> None:
    assert check_kb() == []
    result = load()
    assert len(result.matters) >= 160
    assert {p.value.code for p in result.profiles} >= {"demo", "laoyuan"}


def test_check_command_ok() -> None:
    out = CliRunner().invoke(check_command, [])
    assert out.exit_code == 0, out.output
    assert re.fullmatch(r"OK: \d+ matters, \d+ communities\n", out.output)


def test_check_command_fails_on_broken_copy(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "repairs.yml"
    replace_once(path, "first_contact: {party: property}", "first_contact: {party: plumber}")
    out = CliRunner().invoke(check_command, ["--root", str(kb_copy)])
    assert out.exit_code == 1
    assert f"{path}:{line_of(path, 'party: plumber')}:" in out.output


def test_unknown_party(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "noise.yml"
    replace_once(path, "- {party: community}", "- {party: neighbourhood_watch}")
    errors = check_kb(kb_copy)
    line = line_of(path, "neighbourhood_watch")
    assert errors_at(errors, path, line), errors
    assert "party" in errors_at(errors, path, line)[0]


def test_unknown_sub(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "pets.yml"
    replace_once(path, "{party: department, sub: police}", "{party: department, sub: dog_squad}")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "dog_squad"))
    assert found and "dog_squad" in found[0], errors


def test_sub_on_party_without_subs(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "repairs.yml"
    replace_once(path, "first_contact: {party: property}", "first_contact: {party: property, sub: water}")
    errors = check_kb(kb_copy)
    assert errors_at(errors, path, line_of(path, "party: property, sub: water")), errors


def test_duplicate_id(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "pets.yml"
    text = path.read_text(encoding="utf-8")
    first = text.index("- id: dog_barking")
    end = text.index("\n- id:", first + 1)
    path.write_text(text + "\n" + text[first:end].rstrip() + "\n", encoding="utf-8")
    errors = check_kb(kb_copy)
    dup_line = len(text.splitlines()) + 2  # the appended "- id: dog_barking"
    found = errors_at(errors, path, dup_line)
    assert found and "duplicate matter id 'dog_barking'" in found[0], errors


def test_clarify_option_to_unknown_matter(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "repairs.yml"
    replace_once(path, "matter: drain_blocked_shared}", "matter: drain_blocked_nowhere}")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "drain_blocked_nowhere"))
    assert found and "unknown matter 'drain_blocked_nowhere'" in found[0], errors


def test_missing_required_field(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "parking.yml"
    replace_once(path, "  title: 车被别人的车堵住了\n", "")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "- id: car_blocked_in"))
    assert found and "title" in found[0] and "car_blocked_in" in found[0], errors


def test_too_few_examples(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "contacts.yml"
    replace_once(path, "    - 街道办几点下班\n", "")
    replace_once(path, "    - 怎么联系街道\n", "")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "examples:", after="- id: contact_street"))
    assert found and "at least 4" in found[0], errors


def test_emergency_without_safety(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "emergency.yml"
    text = path.read_text(encoding="utf-8")
    start = text.index("- id: suicide_risk")
    safety = text.index("  safety:\n", start)
    end = text.index("\n- id:", safety)
    path.write_text(text[:safety] + text[end + 1 :], encoding="utf-8")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "- id: suicide_risk"))
    assert found and "safety" in found[0], errors


def test_profile_missing_contact_a_matter_needs(kb_copy: Path) -> None:
    path = kb_copy / "communities" / "laoyuan.yml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  water_affairs:\n")
    end = text.index("\n  landscaping:", start)
    path.write_text(text[:start] + text[end + 1 :], encoding="utf-8")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "departments:"))
    assert found and "departments.water_affairs" in found[0] and "'laoyuan'" in found[0], errors


def test_yaml_syntax_error_names_its_line(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "pets.yml"
    replace_once(path, "  title: 狗叫扰民\n", "  title: [狗叫扰民\n")
    errors = check_kb(kb_copy)
    syntax = [e for e in errors if e.startswith(f"{path}:") and "YAML syntax error" in e]
    assert syntax, errors
    reported = int(syntax[0].split(":")[1])
    assert line_of(path, "title: [狗叫扰民") <= reported <= line_of(path, "title: [狗叫扰民") + 3


def test_duplicate_yaml_key(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "pets.yml"
    replace_once(path, "  title: 狗叫扰民\n", "  title: 狗叫扰民\n  title: 狗叫\n")
    errors = check_kb(kb_copy)
    assert errors_at(errors, path, line_of(path, "title: 狗叫", after="title: 狗叫扰民")), errors


def test_unverified_article_is_refused(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "renovation.yml"
    replace_once(path, "{law: 城乡规划法, article: 第64条}", "{law: 城乡规划法, article: 第65条}")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "第65条"))
    assert found and "not a verified article" in found[0], errors


def test_unknown_placeholder(kb_copy: Path) -> None:
    path = kb_copy / "matters" / "environment.yml"
    replace_once(path, "请{物业}增加清运", "请{物管}增加清运")
    errors = check_kb(kb_copy)
    assert errors_at(errors, path, line_of(path, "{物管}")), errors


def test_community_without_property_needs_fallback(kb_copy: Path) -> None:
    path = kb_copy / "communities" / "laoyuan.yml"
    replace_once(path, "property_fallback: community\n", "")
    errors = check_kb(kb_copy)
    assert any(e.startswith(f"{path}:") and "property_fallback" in e for e in errors), errors


def test_keyword_with_a_filler_word_is_refused(kb_copy: Path) -> None:
    """Search removes filler words (了, 一直 …) from messages, so a keyword containing one never matches
    as written."""
    path = kb_copy / "matters" / "repairs.yml"
    line = line_of(path, "keywords: [楼道灯")
    replace_once(path, "keywords: [楼道灯", "keywords: [楼道灯坏了, 楼道灯")
    errors = check_kb(kb_copy)
    assert any("'楼道灯坏了'" in e and "filler" in e for e in errors_at(errors, path, line)), errors


OPEN311 = """
open311:
  services:
    by_matter:
      lift_broken: "017"
      no_such_matter: "018"
    by_category:
      repairs: "001"
    default: "099"
"""


def test_open311_mapping_loads_typed_and_names_known_matters(kb_copy: Path) -> None:
    path = kb_copy / "communities" / "demo.yml"
    path.write_text(path.read_text(encoding="utf-8") + OPEN311, encoding="utf-8")
    errors = check_kb(kb_copy)
    found = errors_at(errors, path, line_of(path, "no_such_matter:"))
    assert len(found) == 1 and "unknown matter 'no_such_matter'" in found[0], errors
    assert not [e for e in errors if "lift_broken" in e]
    [profile] = [p.value for p in load(kb_copy).profiles if p.value.code == "demo"]
    assert profile.open311 is not None
    assert profile.open311.services.by_category == {"repairs": "001"}
    assert profile.open311.services.default == "099"


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('repairs: "001"', 'not_a_category: "001"', "not_a_category:"),
        ('default: "099"', "default: 99", "default: 99"),  # unquoted: a number, not a code
    ],
)
def test_open311_mapping_errors_name_their_line(kb_copy: Path, old: str, new: str, needle: str) -> None:
    path = kb_copy / "communities" / "demo.yml"
    path.write_text(path.read_text(encoding="utf-8") + OPEN311.replace(old, new), encoding="utf-8")
    errors = check_kb(kb_copy)
    assert errors_at(errors, path, line_of(path, needle)), errors
