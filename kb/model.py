"""The shapes of the knowledge base: parties, matters and community profiles.

A *matter* is one thing residents ask about ("楼道灯坏了"). It names *who* handles it as abstract party
codes (``property``, ``department/urban_management`` …); a *community profile* maps those codes to the
real office, name and phone of one community. The answer a resident reads is the two combined (see
:mod:`kb.answer`). Party codes are a fixed vocabulary shared by the data, the API and the core.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Party(StrEnum):
    """Who handles a matter, in the terms residents know."""

    PROPERTY = "property"  # 物业服务企业 (or whoever manages the estate in its place)
    COMMUNITY = "community"  # 社区居委会 / 社区工作站 / 党群服务中心
    STREET = "street"  # 街道办事处 / 乡镇人民政府
    OWNERS_COMMITTEE = "owners_committee"  # 业主委员会 / 业主大会
    OWNER = "owner"  # 业主自理 (the resident's own exclusive part)
    DEPARTMENT = "department"  # a government department; ``sub`` says which
    UTILITY = "utility"  # water, power, gas, heating, telecom supplier; ``sub`` says which
    EMERGENCY = "emergency"  # 110 / 119 / 120 / elevator emergency line; ``sub`` says which
    HOTLINE = "hotline"  # 12345 政务服务便民热线
    DEVELOPER = "developer"  # 开发商 / 建设单位


class DepartmentSub(StrEnum):
    URBAN_MANAGEMENT = "urban_management"  # 城管 / 综合行政执法
    POLICE = "police"  # 公安派出所
    TRAFFIC_POLICE = "traffic_police"  # 交警
    HOUSING = "housing"  # 住房和建设局 / 房管局 (物业主管, 维修资金, 房屋安全, 租赁)
    MARKET_REGULATION = "market_regulation"  # 市场监督管理局 (价格, 电梯监察, 消费维权; 12315)
    ENVIRONMENT = "environment"  # 生态环境局 (12369)
    FIRE_RESCUE = "fire_rescue"  # 消防救援大队/站 (non-emergency fire-safety complaints)
    CIVIL_AFFAIRS = "civil_affairs"  # 民政局 (救助, 养老, 婚姻登记)
    HEALTH = "health"  # 卫生健康: 社区卫生服务中心, 卫生监督
    HUMAN_RESOURCES = "human_resources"  # 人力资源和社会保障局 (欠薪, 社保; 12333)
    EDUCATION = "education"  # 教育局 (学位, 入学)
    NATURAL_RESOURCES = "natural_resources"  # 规划和自然资源局
    WATER_AFFAIRS = "water_affairs"  # 水务局 (市政排水, 井盖)
    LANDSCAPING = "landscaping"  # 园林绿化 / 城管园林 (public green space, tree felling approval)
    REAL_ESTATE_REGISTRATION = "real_estate_registration"  # 不动产登记中心
    JUDICIAL = "judicial"  # 司法所 / 法律援助 (12348)
    POSTAL = "postal"  # 邮政管理局 (快递投诉 12305)
    TRANSPORT = "transport"  # 交通运输局 (公交线路, 出租车)
    COMMUNICATIONS = "communications"  # 通信管理局 (电信投诉 12300)
    MEDICAL_INSURANCE = "medical_insurance"  # 医疗保障局 (医保)
    DISABLED_PERSONS = "disabled_persons"  # 残疾人联合会 (残疾证, 残疾人补贴)


class UtilitySub(StrEnum):
    WATER = "water"
    POWER = "power"
    GAS = "gas"
    HEATING = "heating"
    TELECOM = "telecom"  # 宽带 / 电话 / 有线电视


class EmergencySub(StrEnum):
    FIRE = "fire"  # 119
    POLICE = "police"  # 110
    AMBULANCE = "ambulance"  # 120
    ELEVATOR_EMERGENCY = "elevator_emergency"  # 电梯应急处置平台 (many cities 96333)


SUBS_BY_PARTY: dict[Party, frozenset[str]] = {
    Party.DEPARTMENT: frozenset(DepartmentSub),
    Party.UTILITY: frozenset(UtilitySub),
    Party.EMERGENCY: frozenset(EmergencySub),
}
"""Parties that need a ``sub`` and the sub-codes each accepts; every other party takes none."""


class Category(StrEnum):
    """Topic groups; each ``kb/matters/<category>.yml`` file holds one."""

    REPAIRS = "repairs"
    UTILITIES = "utilities"
    NEIGHBOURS = "neighbours"
    NOISE = "noise"
    PARKING = "parking"
    SAFETY = "safety"
    EMERGENCY = "emergency"
    ENVIRONMENT = "environment"
    PROPERTY_FEES = "property_fees"
    OWNERS_COMMITTEE = "owners_committee"
    RENOVATION = "renovation"
    PETS = "pets"
    PUBLIC_ORDER = "public_order"
    MUNICIPAL = "municipal"
    HOUSING = "housing"
    SOCIAL_SERVICES = "social_services"
    CONSUMER = "consumer"
    CONTACTS = "contacts"


CATEGORY_LABELS: dict[Category, str] = {
    Category.REPAIRS: "房屋与公共设施维修",
    Category.UTILITIES: "水电气暖与通信",
    Category.NEIGHBOURS: "邻里关系",
    Category.NOISE: "噪声扰民",
    Category.PARKING: "停车与车辆",
    Category.SAFETY: "消防与安全隐患",
    Category.EMERGENCY: "紧急情况",
    Category.ENVIRONMENT: "环境卫生与绿化",
    Category.PROPERTY_FEES: "物业服务与收费",
    Category.OWNERS_COMMITTEE: "业主大会与业委会",
    Category.RENOVATION: "装修与违建",
    Category.PETS: "养犬与宠物",
    Category.PUBLIC_ORDER: "治安与秩序",
    Category.MUNICIPAL: "小区外市政设施",
    Category.HOUSING: "房屋、开发商与租赁",
    Category.SOCIAL_SERVICES: "社区服务与民生保障",
    Category.CONSUMER: "消费与食品安全",
    Category.CONTACTS: "常用联系方式",
}

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_ARTICLE = re.compile(r"^第[0-9]+条(之[一二三四五六七八九十]+)?(第[0-9]+款)?(第[0-9]+项)?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PartyRef(_Strict):
    """A party code, plus the sub-code for departments, utilities and emergency lines."""

    party: Party
    sub: str | None = None

    @model_validator(mode="after")
    def _sub_fits_party(self) -> Self:
        allowed = SUBS_BY_PARTY.get(self.party)
        if allowed is None:
            if self.sub is not None:
                raise ValueError(f"party {self.party.value!r} takes no sub (got {self.sub!r})")
        elif self.sub is None:
            raise ValueError(f"party {self.party.value!r} needs a sub, one of: {', '.join(sorted(allowed))}")
        elif self.sub not in allowed:
            raise ValueError(
                f"unknown sub {self.sub!r} for party {self.party.value!r}; known: {', '.join(sorted(allowed))}"
            )
        return self

    @property
    def key(self) -> str:
        return f"{self.party.value}/{self.sub}" if self.sub else self.party.value


class LegalRef(_Strict):
    """One legal provision, e.g. ``{law: 民法典, article: 第942条第2款}``."""

    law: str = Field(min_length=2)
    article: str | None = None  # None: cite the law as a whole (article numbers unsettled)
    note: str | None = None

    @field_validator("law")
    @classmethod
    def _bare_name(cls, v: str) -> str:
        if v.startswith("《") or v.endswith("》"):
            raise ValueError("write the law's name without 《》")
        return v

    @field_validator("article")
    @classmethod
    def _article_form(cls, v: str | None) -> str | None:
        if v is not None and not _ARTICLE.match(v):
            raise ValueError(f"article must look like 第942条 / 第942条第2款 / 第291条之二, got {v!r}")
        return v

    def short(self) -> str:
        return f"《{self.law}》{self.article or ''}"


class ClarifyOption(_Strict):
    label: str = Field(min_length=1, max_length=20)  # button title
    matter: str  # id of the matter this choice leads to


class Clarify(_Strict):
    question: str = Field(min_length=4)
    options: list[ClarifyOption] = Field(min_length=2, max_length=6)


class Matter(_Strict):
    """One thing residents ask about, with who handles it and why."""

    id: str
    title: str = Field(min_length=2)
    category: Category
    summary: str = Field(min_length=6)  # one or two sentences: whose duty it is, and why
    examples: list[str] = Field(min_length=4)  # how residents actually write it
    keywords: list[str] = Field(default_factory=list)
    # The matter only matches messages containing one of these words (e.g. "电话" for a contact-details
    # matter), so that "业委会跟物业串通" is not taken for "业委会的联系方式".
    requires_any: list[str] = Field(default_factory=list)
    first_contact: PartyRef
    escalation: list[PartyRef] = Field(default_factory=list)
    # About the owner's exclusive part (专有部分, 民法典 第271条): the first contact is the 物业 as a paid
    # service (物业管理条例 第43条); where there is no property company the owner arranges it.
    exclusive_part: bool = False
    resident_should: list[str] = Field(min_length=1)
    legal_basis: list[LegalRef] = Field(default_factory=list)
    caveats: list[str] = Field(default_factory=list)
    offer_appeal: bool
    emergency: bool = False
    safety: list[str] = Field(default_factory=list)  # immediate instructions; required for emergencies
    clarify: Clarify | None = None

    @field_validator("id")
    @classmethod
    def _snake_case(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"id must be snake_case ascii, got {v!r}")
        return v

    @field_validator("examples")
    @classmethod
    def _distinct_examples(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("examples repeat")
        return v

    @model_validator(mode="after")
    def _exclusive_part_goes_to_property(self) -> Self:
        if self.exclusive_part and self.first_contact.party is not Party.PROPERTY:
            raise ValueError("exclusive_part: true needs first_contact: {party: property} (a paid service)")
        return self

    @model_validator(mode="after")
    def _emergency_has_safety(self) -> Self:
        if self.emergency and not self.safety:
            raise ValueError("an emergency matter needs safety instructions (safety: [...])")
        return self

    def parties(self) -> list[PartyRef]:
        return [self.first_contact, *self.escalation]


class ContactInfo(_Strict):
    """A real office or line as residents reach it."""

    name: str = Field(min_length=2)
    phone: str | None = None
    hours: str | None = None
    location: str | None = None
    note: str | None = None
    emergency_phone: str | None = None  # 24小时值班 / 应急维修, used first in emergencies


class PropertyInfo(ContactInfo):
    company: str | None = None  # legal name of the 物业服务企业, when ``name`` is the local service desk


DEFAULT_EMERGENCY: dict[EmergencySub, ContactInfo] = {
    EmergencySub.FIRE: ContactInfo(name="火警", phone="119", hours="24小时"),
    EmergencySub.POLICE: ContactInfo(name="报警", phone="110", hours="24小时"),
    EmergencySub.AMBULANCE: ContactInfo(name="急救", phone="120", hours="24小时"),
}
"""National emergency numbers; a profile adds (at least) its elevator emergency line."""


class HandlerKind(StrEnum):
    """What kind of organisation handles an appeal (分拨对象)."""

    PROPERTY = "property"  # 物业服务企业
    COMMUNITY = "community"  # 社区工作站 / 居委会
    GRID = "grid"  # 网格员
    DEPARTMENT = "department"  # 职能部门
    CITY = "city"  # the city's case backend (市民生诉求平台), when one is configured


_HANDLER_CODE = re.compile(r"^[a-z][a-z0-9_-]*$")


class HandlerProfile(_Strict):
    """One organisation that handles appeals in the community (``case_desk.handlers``).

    ``parties`` are the KB party refs (``property``, ``department/urban_management``…) for which this
    handler is suggested; a grid worker's ``buildings`` narrow its suggestion to the buildings it covers.
    ``sees_contact``: whether an assignment pushed to its chat carries the resident's phone number.
    """

    code: str
    name: str = Field(min_length=2)
    kind: HandlerKind
    phone: str | None = None
    parties: list[str] = Field(default_factory=list)
    buildings: list[str] = Field(default_factory=list)
    sees_contact: bool = True

    @field_validator("code")
    @classmethod
    def _code_form(cls, v: str) -> str:
        if not _HANDLER_CODE.match(v) or len(v) > 64:
            raise ValueError(f"handler code must be lower-case ascii (a-z, 0-9, _ or -), got {v!r}")
        return v

    @field_validator("parties")
    @classmethod
    def _known_parties(cls, v: list[str]) -> list[str]:
        for ref in v:
            party, _, sub = ref.partition("/")
            if party not in set(Party):
                raise ValueError(f"unknown party {party!r} in {ref!r}")
            if sub and sub not in SUBS_BY_PARTY.get(Party(party), frozenset()):
                raise ValueError(f"unknown sub {sub!r} for party {party!r}")
        return v


class IncidentRuleProfile(_Strict):
    """When reports of one kind make an area-wide incident (``case_desk.incidents.<kind>``): ``reports``
    from at least ``buildings`` buildings within ``window_minutes``. A kind huiyin knows (``water``,
    ``power``) keeps its matters and words unless given; a new kind names its ``matters`` (KB
    matter ids) or ``categories``, its ``label`` (停水) and the ``words`` residents use about it.
    ``reports: 0`` switches the kind off for the community."""

    reports: int | None = Field(default=None, ge=0, le=10_000)
    buildings: int | None = Field(default=None, ge=1, le=1_000)
    window_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    label: str | None = Field(default=None, max_length=16)
    matters: list[str] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)
    words: list[str] = Field(default_factory=list)


class CaseDeskProfile(_Strict):
    """How the community handles its appeals: who, by when, and which go to the city.

    ``first_response_hours`` (None: the server's ``HUIYIN_FIRST_RESPONSE_HOURS``) and the resolution
    deadline (``resolution_hours``, per category in ``resolution_hours_by_category``); reminders
    ``remind_before_hours`` before a deadline; the daily digest of overdue appeals at ``digest_hour``
    (local time). ``to_city``: where a case backend is configured, which appeals go to it when filed —
    ``all``, ``none`` (staff decide each time), or a list of categories and KB matter ids. ``handlers``:
    when empty, one per contact of the profile (the property company, the community office, each
    department). ``incidents``: the thresholds of area-wide incidents per kind (:class:`IncidentRuleProfile`).
    """

    first_response_hours: int | None = Field(default=None, ge=1, le=24 * 30)
    resolution_hours: int = Field(default=72, ge=1, le=24 * 365)
    resolution_hours_by_category: dict[Category, int] = Field(default_factory=dict)
    remind_before_hours: float = Field(default=2.0, ge=0, le=24 * 7)
    digest_hour: int = Field(default=9, ge=0, le=23)
    to_city: str | list[str] = "all"
    handlers: list[HandlerProfile] = Field(default_factory=list)
    incidents: dict[str, IncidentRuleProfile] = Field(default_factory=dict)

    @field_validator("to_city")
    @classmethod
    def _to_city_form(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str) and v not in ("all", "none"):
            raise ValueError(f"to_city is all, none or a list of categories and matter ids, got {v!r}")
        return v

    @model_validator(mode="after")
    def _unique_handler_codes(self) -> Self:
        codes = [h.code for h in self.handlers]
        if len(codes) != len(set(codes)):
            raise ValueError("case_desk.handlers: two handlers share a code")
        return self


class Open311Services(_Strict):
    """Which Open311 ``service_code`` a community's appeals are filed under: by the KB matter the appeal
    was filed for, else by its category, else the community's default. Codes are strings (quote them in
    YAML: ``"001"``, not ``001``)."""

    by_matter: dict[str, str] = Field(default_factory=dict)
    by_category: dict[Category, str] = Field(default_factory=dict)
    default: str | None = None

    @field_validator("by_matter", "by_category")
    @classmethod
    def _codes_not_empty(cls, v: dict[str, str]) -> dict[str, str]:
        empty = sorted(str(k) for k, code in v.items() if not code.strip())
        if empty:
            raise ValueError(f"empty service code for {', '.join(empty)}")
        return v

    @field_validator("default")
    @classmethod
    def _default_not_empty(cls, v: str | None) -> str | None:
        if v is not None and not v:
            raise ValueError("empty default service code (leave the key out instead)")
        return v

    def codes(self) -> list[tuple[str, str]]:
        """Every (where, code) pair of the mapping, e.g. ``("by_category.repairs", "001")``."""
        found = [(f"by_matter.{k}", c) for k, c in self.by_matter.items()]
        found += [(f"by_category.{k.value}", c) for k, c in self.by_category.items()]
        if self.default is not None:
            found.append(("default", self.default))
        return found


class Open311Profile(_Strict):
    """A community's settings for an Open311 case backend (``open311:`` in its profile)."""

    services: Open311Services = Field(default_factory=Open311Services)


class CommunityProfile(_Strict):
    """The real contacts of one community (社区), by party code.

    ``property`` is ``None`` for estates without a 物业服务企业 (老旧小区); ``property_fallback`` then
    names who takes over property duties (兜底), and every answer says so.
    """

    code: str
    name: str
    city: str
    district: str
    demo: bool = False  # fictional data for the embedded default; never shown as real
    description: str | None = None
    property: PropertyInfo | None
    property_fallback: Party | None = None
    fallback_note: str | None = None
    owners_committee: ContactInfo | None = None
    community: ContactInfo
    street: ContactInfo
    hotline: ContactInfo
    developer: ContactInfo | None = None
    departments: dict[DepartmentSub, ContactInfo] = Field(default_factory=dict)
    utilities: dict[UtilitySub, ContactInfo] = Field(default_factory=dict)
    emergency: dict[EmergencySub, ContactInfo] = Field(default_factory=dict)
    case_desk: CaseDeskProfile = Field(default_factory=CaseDeskProfile)
    # How its appeals are filed with an Open311 backend (docs/backend.md); HUIYIN_BACKEND_COMMUNITIES wins.
    open311: Open311Profile | None = None

    @field_validator("code")
    @classmethod
    def _code_form(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"community code must be snake_case ascii, got {v!r}")
        return v

    @model_validator(mode="after")
    def _fallback_when_no_property(self) -> Self:
        if self.property is None:
            if self.property_fallback not in (Party.COMMUNITY, Party.STREET):
                raise ValueError(
                    "a community without property company needs property_fallback: community|street"
                )
            if not self.fallback_note:
                raise ValueError(
                    "a community without property company needs fallback_note (shown to residents)"
                )
        elif self.property_fallback is not None:
            raise ValueError("property_fallback is only for communities without a property company")
        return self

    def emergency_line(self, sub: EmergencySub) -> ContactInfo | None:
        return self.emergency.get(sub) or DEFAULT_EMERGENCY.get(sub)

    def emergency_line_known(self, sub: str) -> bool:
        return sub in set(EmergencySub) and self.emergency_line(EmergencySub(sub)) is not None
