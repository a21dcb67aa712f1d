"""Turn a matter plus a community profile into the answer a resident reads.

The matter says *which kind* of party handles it; the profile says *who that is here*: name, phone,
hours, place. Two things change the wording on purpose:

- **兜底**: where the community has no property company, property duties go to the community
  workstation or street office named by the profile, and the answer says so in so many words — a
  resident of an old estate must not be told to "call the 物业" that does not exist. Matter texts write
  ``{物业}`` where they mean "whoever manages the estate"; it renders as 物业 or as the fallback office.
- **Emergencies** start with the safety instructions, before anything about who is responsible.
"""

from __future__ import annotations

from dataclasses import dataclass

from kb.model import (
    Category,
    CommunityProfile,
    ContactInfo,
    DepartmentSub,
    EmergencySub,
    Matter,
    Party,
    PartyRef,
    UtilitySub,
)

PROPERTY_PLACEHOLDER = "{物业}"


@dataclass(frozen=True)
class Contact:
    """A party resolved in one community. ``party`` is the code of whoever actually answers (after 兜底)."""

    party: str
    sub: str | None
    name: str
    phone: str | None
    hours: str | None


@dataclass(frozen=True)
class Clarification:
    """Ask this before answering: the matter depends on a fact the message does not give."""

    question: str
    options: tuple[tuple[str, str], ...]  # (button title, matter_id)


@dataclass(frozen=True)
class KBAnswer:
    """Who handles the resident's matter in their community, and the full answer text.

    ``text`` is ready to send. When ``clarify`` is set the core should ask it first and, on a choice,
    send :meth:`kb.KnowledgeBase.answer` of the chosen matter; ``text`` is then a fallback answer.
    ``score`` is the search similarity (1.0 when the matter was chosen by id).
    """

    matter_id: str
    title: str
    category: str
    score: float
    emergency: bool
    offer_appeal: bool
    first_contact: Contact
    escalation: tuple[Contact, ...]
    text: str
    clarify: Clarification | None
    legal_basis: tuple[str, ...]
    brief: str = ""
    """The answer in at most three lines, for a group chat: the heading, who to contact first with their
    phone, and the first thing to do (emergencies keep their full safety script; see :func:`render`)."""
    unsure: bool = False
    """The best match was too weak to name a party: this is the 12345 hotline's answer instead (see
    :meth:`kb.KnowledgeBase.unsure`)."""


@dataclass(frozen=True, slots=True)
class _Resolved:
    contact: Contact
    location: str | None = None
    note: str | None = None  # shown after the contact, e.g. why the community stands in


_OWNER_NAME = "业主自行处理（属于您家专有部分）"
_DEVELOPER_NAME = "开发商（建设单位）"
_DEVELOPER_NOTE = "联系方式见购房合同、交房资料或售楼处"


def _from_info(
    ref_party: str, sub: str | None, info: ContactInfo, note: str | None = None, urgent: bool = False
) -> _Resolved:
    if urgent and info.emergency_phone:
        return _Resolved(Contact(ref_party, sub, info.name, info.emergency_phone, "24小时值班"))
    duty = f"24小时值班电话 {info.emergency_phone}" if info.emergency_phone else None
    return _Resolved(
        Contact(party=ref_party, sub=sub, name=info.name, phone=info.phone, hours=info.hours),
        location=info.location,
        note="；".join(n for n in (duty, note or info.note) if n) or None,
    )


def property_stand_in(profile: CommunityProfile) -> tuple[Party, ContactInfo] | None:
    """Who does property duties where there is no property company (兜底), or None if there is one."""
    if profile.property is not None:
        return None
    if profile.property_fallback is Party.STREET:
        return Party.STREET, profile.street
    return Party.COMMUNITY, profile.community


def resolve(ref: PartyRef, profile: CommunityProfile, urgent: bool = False) -> _Resolved:
    """The real contact for a party code in ``profile``; ``urgent`` prefers 24-hour lines.

    Raises KeyError when the profile lacks a department or utility the matter needs; ``kb check``
    reports such gaps, so a checked knowledge base never raises here.
    """
    party = ref.party
    if party is Party.PROPERTY:
        if profile.property is not None:
            info: ContactInfo = profile.property
            if profile.property.company:
                info = info.model_copy(update={"name": f"{info.name}（{profile.property.company}）"})
            return _from_info("property", None, info, urgent=urgent)
        stand_in = property_stand_in(profile)
        assert stand_in is not None
        who, info = stand_in
        return _from_info(who.value, None, info, urgent=urgent)
    if party is Party.COMMUNITY:
        return _from_info("community", None, profile.community, urgent=urgent)
    if party is Party.STREET:
        return _from_info("street", None, profile.street, urgent=urgent)
    if party is Party.HOTLINE:
        return _from_info("hotline", None, profile.hotline)
    if party is Party.OWNERS_COMMITTEE:
        if profile.owners_committee is not None:
            return _from_info("owners_committee", None, profile.owners_committee)
        return _from_info(
            "community", None, profile.community, note="本小区尚未成立业主委员会，可由社区居委会协调"
        )
    if party is Party.OWNER:
        return _Resolved(Contact("owner", None, _OWNER_NAME, None, None))
    if party is Party.DEVELOPER:
        if profile.developer is not None:
            return _from_info("developer", None, profile.developer)
        return _Resolved(Contact("developer", None, _DEVELOPER_NAME, None, None), note=_DEVELOPER_NOTE)
    assert ref.sub is not None  # guaranteed by PartyRef validation
    if party is Party.DEPARTMENT:
        return _from_info("department", ref.sub, profile.departments[DepartmentSub(ref.sub)], urgent=urgent)
    if party is Party.UTILITY:
        return _from_info("utility", ref.sub, profile.utilities[UtilitySub(ref.sub)], urgent=urgent)
    line = profile.emergency_line(EmergencySub(ref.sub))
    if line is None:
        raise KeyError(f"{profile.code}: no emergency line {ref.sub!r}")
    return _from_info("emergency", ref.sub, line)


def _contact_block(r: _Resolved) -> str:
    """The first contact in full: name, then phone, hours and place on their own line."""
    c = r.contact
    details = []
    if c.phone:
        details.append(f"电话 {c.phone}")
    if c.hours:
        details.append(f"时间 {c.hours}")
    if r.location:
        details.append(f"地址 {r.location}")
    block = c.name
    if details:
        block += "\n   " + "；".join(details)
    if r.note:
        block += f"\n   （{r.note}）"
    return block


def _contact_line(r: _Resolved) -> str:
    """An escalation step in one line: name, phone and hours (notes belong to the first contact only)."""
    c = r.contact
    line = c.name
    if c.phone:
        line += f"，电话 {c.phone}"
    if c.hours:
        line += f"（{c.hours}）"
    return line


def _fill(text: str, profile: CommunityProfile) -> str:
    if PROPERTY_PLACEHOLDER not in text:
        return text
    stand_in = property_stand_in(profile)
    who = "物业" if stand_in is None else ("社区工作站" if stand_in[0] is Party.COMMUNITY else "街道办")
    return text.replace(PROPERTY_PLACEHOLDER, who)


def render(matter: Matter, profile: CommunityProfile) -> KBAnswer:
    """The answer to ``matter`` for residents of ``profile`` (score 1.0; search sets its own)."""
    no_property = profile.property is None
    # The owner's exclusive part (专有部分): the 物业 repairs it as a paid service; where there is no
    # property company the owner arranges it (the 兜底 office does not repair inside flats).
    first_ref = matter.first_contact
    if matter.exclusive_part and no_property:
        first_ref = PartyRef(party=Party.OWNER)
    owner_first = first_ref.party is Party.OWNER
    urgent = matter.emergency
    first = resolve(first_ref, profile, urgent)
    # When the owner comes first, a 物业 step is the paid service, shown apart rather than as a step up.
    paid_service: _Resolved | None = None
    chain: list[_Resolved] = []
    seen = {(first.contact.party, first.contact.sub, first.contact.name)}
    for ref in matter.escalation:
        if owner_first and ref.party is Party.PROPERTY:
            if not no_property:
                paid_service = resolve(ref, profile)
            continue
        r = resolve(ref, profile, urgent)
        key = (r.contact.party, r.contact.sub, r.contact.name)
        if key not in seen:  # after 兜底 the community may appear twice
            seen.add(key)
            chain.append(r)
    legal = tuple(ref.short() for ref in matter.legal_basis)

    lines: list[str] = []
    if matter.emergency:
        lines.append("【紧急】请先保证人身安全：")
        lines.extend(f"{i}. {_fill(s, profile)}" for i, s in enumerate(matter.safety, 1))
        lines.append("")
    lines.append(f"【{matter.title}】")
    lines.append(_fill(matter.summary, profile))
    stands_in = property_stand_in(profile)
    if stands_in is not None and profile.fallback_note and not owner_first:
        if first_ref.party is Party.PROPERTY:
            lines.append(f"说明：{profile.fallback_note}。这件事请直接找{stands_in[1].name}。")
        elif any(ref.party is Party.PROPERTY for ref in matter.escalation):
            lines.append(f"说明：{profile.fallback_note}，需要物业处理的环节请找{stands_in[1].name}。")
    label = "联系方式" if matter.category is Category.CONTACTS else "先找"
    lines.append(f"{label}：{_contact_block(first)}")
    if paid_service is not None:
        lines.append(f"需要上门维修的，可以请{_contact_line(paid_service)}，提供有偿服务。")
    elif (
        owner_first
        and no_property
        and (matter.exclusive_part or any(ref.party is Party.PROPERTY for ref in matter.escalation))
    ):
        lines.append("本小区没有物业服务企业，需要上门维修的，请联系有资质的维修师傅。")
    elif matter.exclusive_part:
        lines.append("这属于您家的专有部分，物业上门维修一般是有偿服务，费用请事先问清。")
    lines.append("您可以这样做：")
    lines.extend(f"{i}. {_fill(s, profile)}" for i, s in enumerate(matter.resident_should, 1))
    if chain:
        lines.append("如果没有解决，可以依次找：")
        lines.extend(f"{i}. {_contact_line(r)}" for i, r in enumerate(chain, 1))
    if legal:
        lines.append("依据：" + _cite(matter))
    if matter.caveats:
        lines.append("提示：" + "".join(_end(_fill(c, profile)) for c in matter.caveats))
    if profile.demo:
        lines.append("（演示数据：社区、物业等单位名称和本地电话均为虚构示例）")

    clarify = None
    if matter.clarify is not None:
        clarify = Clarification(
            question=matter.clarify.question,
            options=tuple((o.label, o.matter) for o in matter.clarify.options),
        )
    brief = [f"【{matter.title}】", f"{label}：{_contact_line(first)}"]
    if matter.resident_should:
        brief.append(_fill(matter.resident_should[0], profile))
    return KBAnswer(
        matter_id=matter.id,
        title=matter.title,
        category=matter.category.value,
        score=1.0,
        emergency=matter.emergency,
        offer_appeal=matter.offer_appeal,
        first_contact=first.contact,
        escalation=tuple(r.contact for r in chain),
        text="\n".join(lines),
        clarify=clarify,
        legal_basis=legal,
        brief="\n".join(lines) if matter.emergency else "\n".join(brief),
    )


def _end(sentence: str) -> str:
    return sentence if sentence.endswith(("。", "！", "？", "）")) else sentence + "。"


def _cite(matter: Matter) -> str:
    """Citations grouped by law: 《民法典》第271条、第942条；《物业管理条例》第43条."""
    by_law: dict[str, list[str]] = {}
    for ref in matter.legal_basis:
        by_law.setdefault(ref.law, [])
        if ref.article and ref.article not in by_law[ref.law]:
            by_law[ref.law].append(ref.article)
    return "；".join(f"《{law}》{'、'.join(articles)}" for law, articles in by_law.items())
