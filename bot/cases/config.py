"""The case desk's configuration per community, read from the community's profile (``case_desk`` in
``kb/communities/<code>.yml``): its handlers, which handler the KB's first contact suggests, the
deadlines, and which appeals go to the city's case backend when filed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from kb.model import CommunityProfile, HandlerKind

CITY = "city"
"""The code of the city's case backend as a handler (present where a backend is configured)."""

CITY_NAME = "市民生诉求平台"

# Parties whose matters the community office takes on when no handler names them.
_OFFICE_PARTIES = ("community", "owners_committee", "street", "owner", "hotline")


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    code: str
    name: str
    kind: str
    phone: str | None = None
    parties: tuple[str, ...] = ()
    buildings: tuple[str, ...] = ()
    sees_contact: bool = True


@dataclass(frozen=True, slots=True)
class CaseDeskConfig:
    """One community's case desk: its handlers (seeded into the database) and its rules."""

    handlers: tuple[HandlerSpec, ...]
    first_response_hours: int
    resolution_hours: int
    resolution_hours_by_category: dict[str, int] = field(default_factory=dict)
    remind_before: timedelta = timedelta(hours=2)
    digest_hour: int = 9
    to_city: str | tuple[str, ...] = "all"

    def resolution_time(self, category: str | None) -> timedelta:
        hours = self.resolution_hours_by_category.get(category or "", self.resolution_hours)
        return timedelta(hours=hours)

    def goes_to_city(self, category: str | None, matter_id: str | None) -> bool:
        """Whether an appeal of this category / KB matter goes to the city's backend when filed (where
        one is configured)."""
        if self.to_city == "all":
            return True
        if self.to_city == "none":
            return False
        return (category or "") in self.to_city or (matter_id or "") in self.to_city

    def suggest(self, party: str | None, sub: str | None, building: str | None) -> str | None:
        """The code of the handler the KB's first contact points to, or None when none fits.

        A handler naming the exact party ref (``department/urban_management``) wins, then one naming the
        party; among those, a grid worker covering the appeal's building comes first. Matters of the
        community's own parties (居委会, 业委会, 街道…) go to the community office when nobody names them.
        """
        if not party:
            return None
        ref = f"{party}/{sub}" if sub else party
        for wanted in (ref, party):
            found = [h for h in self.handlers if wanted in h.parties]
            covering = [h for h in found if building and building in h.buildings]
            if covering:
                return covering[0].code
            plain = [h for h in found if not h.buildings]
            if plain or found:
                return (plain or found)[0].code
        if party in _OFFICE_PARTIES:
            office = next((h for h in self.handlers if h.kind == HandlerKind.COMMUNITY.value), None)
            return office.code if office else None
        return None


def case_desk_config(profile: CommunityProfile, *, default_first_response_hours: int) -> CaseDeskConfig:
    """The community's case desk, with handlers derived from its contacts when none are listed."""
    desk = profile.case_desk
    if desk.handlers:
        handlers = tuple(
            HandlerSpec(
                code=h.code,
                name=h.name,
                kind=h.kind.value,
                phone=h.phone,
                parties=tuple(h.parties),
                buildings=tuple(h.buildings),
                sees_contact=h.sees_contact,
            )
            for h in desk.handlers
        )
    else:
        handlers = _derived(profile)
    to_city = desk.to_city if isinstance(desk.to_city, str) else tuple(desk.to_city)
    return CaseDeskConfig(
        handlers=handlers,
        first_response_hours=desk.first_response_hours or default_first_response_hours,
        resolution_hours=desk.resolution_hours,
        resolution_hours_by_category={c.value: h for c, h in desk.resolution_hours_by_category.items()},
        remind_before=timedelta(hours=desk.remind_before_hours),
        digest_hour=desk.digest_hour,
        to_city=to_city,
    )


def _derived(profile: CommunityProfile) -> tuple[HandlerSpec, ...]:
    """One handler per contact of the profile: the property company (or whoever stands in for it),
    the community office, and each department (which never sees a resident's phone: they call back
    through the community)."""
    found: list[HandlerSpec] = []
    if profile.property is not None:
        found.append(
            HandlerSpec(
                "property",
                profile.property.name,
                HandlerKind.PROPERTY.value,
                phone=profile.property.phone,
                parties=("property", "developer"),
            )
        )
    office_parties: tuple[str, ...] = ("community",)
    if profile.property is None:
        office_parties += ("property",)
    found.append(
        HandlerSpec(
            "office",
            profile.community.name,
            HandlerKind.COMMUNITY.value,
            phone=profile.community.phone,
            parties=office_parties,
        )
    )
    for sub, contact in profile.departments.items():
        found.append(
            HandlerSpec(
                sub.value,
                contact.name,
                HandlerKind.DEPARTMENT.value,
                phone=contact.phone,
                parties=(f"department/{sub.value}",),
                sees_contact=False,
            )
        )
    return tuple(found)
