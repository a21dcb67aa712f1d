"""Validate the knowledge base: ``huiyin kb check``.

Every problem is reported as ``path:line: message`` so that an editor can jump to it. Besides the
per-record schema (see :mod:`kb.model`), this checks what only the whole collection can show: unique
ids, clarify options that lead somewhere, legal citations limited to verified articles, examples that
would make two matters indistinguishable, community profiles that lack a contact some matter needs, and
Open311 service mappings that name a matter that does not exist.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from kb.loader import LoadResult, Located, load
from kb.model import CommunityProfile, Matter, Party
from kb.search import prepare, searched_form

# Articles checked against the official texts (kb/README.md names the laws); numbering of
# 物业管理条例 is the 2018 revision. Cite nothing else: a wrong article number in an answer residents
# rely on is worse than none. ``None`` means the law may be cited only as a whole, without an article.
ALLOWED_ARTICLES: dict[str, frozenset[str] | None] = {
    "民法典": frozenset(
        {str(n) for n in (*range(271, 279), 281, 282, 285, 286, 288, 1245, 1254, *range(937, 951))}
    ),
    "物业管理条例": frozenset(str(n) for n in (2, 5, 10, 20, 35, 43, 44, 45, 46, 47, 49, 50, 51, 52, 53, 55)),
    "城市居民委员会组织法": frozenset({"2", "3", "4"}),
    "噪声污染防治法": frozenset({"66", "69", "70"}),
    "消防法": frozenset({"18", "28"}),
    "城镇燃气管理条例": frozenset({"17", "19"}),
    "住宅室内装饰装修管理办法": frozenset({"13", "15", "17"}),
    "商品房屋租赁管理办法": frozenset({"8"}),
    "城乡规划法": frozenset({"64", "68"}),
    "刑法": frozenset({"291之二"}),
    # Article numbers not verified, or changed by a recent revision (治安管理处罚法, 2025):
    "治安管理处罚法": None,
    "特种设备安全法": None,
    "大气污染防治法": None,
    "城市市容和环境卫生管理条例": None,
}
_ARTICLE_NUMBER = re.compile(r"^第([0-9]+)条(之[一二三四五六七八九十]+)?")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_ALLOWED_PLACEHOLDERS = frozenset({"{物业}"})


def _check_legal(m: Located[Matter], errors: list[str]) -> None:
    for i, ref in enumerate(m.value.legal_basis):
        where = m.where_of("legal_basis", i)
        if ref.law not in ALLOWED_ARTICLES:
            errors.append(
                f"{where}: {m.value.id}: law {ref.law!r} is not in the verified list (kb/check.py ALLOWED_ARTICLES)"
            )
            continue
        allowed = ALLOWED_ARTICLES[ref.law]
        if ref.article is None:
            continue
        if allowed is None:
            errors.append(f"{where}: {m.value.id}: cite 《{ref.law}》 without an article number (unverified)")
            continue
        match = _ARTICLE_NUMBER.match(ref.article)
        number = (match.group(1) + (match.group(2) or "")) if match else ""
        if number not in allowed:
            errors.append(
                f"{where}: {m.value.id}: 《{ref.law}》{ref.article} is not a verified article "
                f"(kb/check.py ALLOWED_ARTICLES)"
            )


def _check_texts(m: Located[Matter], errors: list[str]) -> None:
    fields: list[tuple[tuple[str | int, ...], str]] = [(("summary",), m.value.summary)]
    fields += [(("resident_should", i), s) for i, s in enumerate(m.value.resident_should)]
    fields += [(("caveats", i), s) for i, s in enumerate(m.value.caveats)]
    fields += [(("safety", i), s) for i, s in enumerate(m.value.safety)]
    for loc, text in fields:
        for ph in _PLACEHOLDER.findall(text):
            if ph not in _ALLOWED_PLACEHOLDERS:
                errors.append(f"{m.where_of(*loc)}: {m.value.id}: unknown placeholder {ph} (only {{物业}})")


def _check_search_words(m: Located[Matter], errors: list[str]) -> None:
    """Keywords and required words are looked for in the message as search prepares it (kb/search.py:
    filler words such as 了/的/一直/好几天 removed). One that a filler changes would silently look for
    something else ("一直在漏" → "在漏", any leak)."""
    for field in ("keywords", "requires_any"):
        for i, word in enumerate(getattr(m.value, field)):
            prepared, plain = prepare(word), searched_form(word)
            if prepared != plain:
                errors.append(
                    f"{m.where_of(field, i)}: {m.value.id}: {field} word {word!r} contains a filler word "
                    f"search removes; it would look for {prepared!r} (write the word without it)"
                )


def _check_matters(result: LoadResult, errors: list[str]) -> dict[str, Located[Matter]]:
    by_id: dict[str, Located[Matter]] = {}
    for m in result.matters:
        first = by_id.get(m.value.id)
        if first is not None:
            errors.append(f"{m.where_of('id')}: duplicate matter id {m.value.id!r} (first at {first.where})")
        else:
            by_id[m.value.id] = m
    examples: dict[str, tuple[str, str]] = {}
    for m in result.matters:
        _check_legal(m, errors)
        _check_texts(m, errors)
        _check_search_words(m, errors)
        if m.value.clarify is not None:
            for i, opt in enumerate(m.value.clarify.options):
                if opt.matter not in by_id:
                    errors.append(
                        f"{m.where_of('clarify', 'options', i, 'matter')}: {m.value.id}: "
                        f"clarify option {opt.label!r} points to unknown matter {opt.matter!r}"
                    )
                elif opt.matter == m.value.id:
                    errors.append(
                        f"{m.where_of('clarify', 'options', i, 'matter')}: {m.value.id}: "
                        "clarify option points back to its own matter"
                    )
        for i, ex in enumerate(m.value.examples):
            key = prepare(ex)
            seen = examples.get(key)
            if not key:
                errors.append(f"{m.where_of('examples', i)}: {m.value.id}: example {ex!r} has no content")
            elif seen is not None and seen[0] != m.value.id:
                errors.append(
                    f"{m.where_of('examples', i)}: {m.value.id}: example {ex!r} is the same as one of "
                    f"{seen[0]} ({seen[1]}); search could not tell them apart"
                )
            else:
                examples[key] = (m.value.id, m.where_of("examples", i))
    return by_id


def _check_profiles(result: LoadResult, matters: dict[str, Located[Matter]], errors: list[str]) -> None:
    # Which department/utility/emergency subs some matter needs, and one matter that needs each.
    needed: dict[tuple[Party, str], Located[Matter]] = {}
    for m in matters.values():
        for ref in m.value.parties():
            if ref.sub is not None:
                needed.setdefault((ref.party, ref.sub), m)
    codes: dict[str, Located[CommunityProfile]] = {}
    for p in result.profiles:
        prof = p.value
        if prof.code in codes:
            errors.append(
                f"{p.where_of('code')}: duplicate community code {prof.code!r} (first at {codes[prof.code].where})"
            )
        codes.setdefault(prof.code, p)
        if p.path.stem != prof.code:
            errors.append(
                f"{p.where_of('code')}: community code {prof.code!r} differs from file name {p.path.name}"
            )
        if prof.open311 is not None:
            for matter_id in prof.open311.services.by_matter:
                if matter_id not in matters:
                    errors.append(
                        f"{p.where_of('open311', 'services', 'by_matter', matter_id)}: community "
                        f"{prof.code!r}: open311.services.by_matter names unknown matter {matter_id!r}"
                    )
        for (party, sub), m in sorted(needed.items()):
            if party is Party.DEPARTMENT:
                present, section = sub in prof.departments, "departments"
            elif party is Party.UTILITY:
                present, section = sub in prof.utilities, "utilities"
            else:
                present, section = prof.emergency_line_known(sub), "emergency"
            if not present:
                errors.append(
                    f"{p.where_of(section)}: community {prof.code!r} has no {section}.{sub}, "
                    f"needed by matter {m.value.id!r} ({m.where})"
                )


def validate(result: LoadResult) -> list[str]:
    """All errors of a loaded knowledge base: the loader's, then the cross-record checks."""
    errors = list(result.errors)
    by_id = _check_matters(result, errors)
    if not result.profiles:
        errors.append("communities/:1: no community profile")
    _check_profiles(result, by_id, errors)
    return errors


def check_kb(root: Path | None = None) -> list[str]:
    """Check the knowledge base under ``root`` (default: the shipped one); ``[]`` means it is sound."""
    return validate(load(root))


@click.command("check")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A knowledge-base folder with matters/ and communities/ (default: the installed one).",
)
def check_command(root: Path | None) -> None:
    """Validate the knowledge base (matters and community profiles); errors name file:line."""
    result = load(root)
    errors = validate(result)
    for err in errors:
        click.echo(err, err=True)
    if errors:
        click.echo(f"{len(errors)} error(s)", err=True)
        sys.exit(1)
    click.echo(f"OK: {len(result.matters)} matters, {len(result.profiles)} communities")
