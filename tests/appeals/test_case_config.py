"""The case desk's configuration from a community's profile: handlers, the KB's suggestion, deadlines and
which appeals go to the city."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from bot.cases.config import case_desk_config
from kb import load_knowledge_base
from kb.model import CaseDeskProfile, HandlerProfile

KB = load_knowledge_base()


def test_the_demo_profile_names_its_handlers_and_deadlines() -> None:
    config = case_desk_config(KB.community("demo"), default_first_response_hours=24)
    assert [h.code for h in config.handlers][:4] == ["property", "office", "grid-1", "grid-2"]
    assert config.resolution_time("utilities") == timedelta(hours=48)
    assert config.resolution_time(None) == timedelta(hours=72)
    assert config.remind_before == timedelta(hours=2)
    assert next(h for h in config.handlers if h.code == "urban_management").sees_contact is False


@pytest.mark.parametrize(
    ("party", "sub", "building", "expected"),
    [
        ("property", None, "3", "property"),
        ("developer", None, None, "property"),
        ("community", None, "3", "grid-1"),  # the grid worker covering building 3
        ("community", None, "6", "grid-2"),
        ("community", None, "12", "office"),  # no grid covers it: the office
        ("community", None, None, "office"),
        ("department", "urban_management", "3", "urban_management"),
        ("department", "traffic_police", None, "police"),
        ("owners_committee", None, None, "office"),
        ("department", "education", None, None),  # nobody here: staff choose
        (None, None, None, None),
    ],
)
def test_the_kb_first_contact_suggests_a_handler(
    party: str | None, sub: str | None, building: str | None, expected: str | None
) -> None:
    config = case_desk_config(KB.community("demo"), default_first_response_hours=24)
    assert config.suggest(party, sub, building) == expected


def test_a_profile_without_handlers_gets_one_per_contact() -> None:
    config = case_desk_config(KB.community("laoyuan"), default_first_response_hours=12)
    codes = [h.code for h in config.handlers]
    assert "office" in codes and config.first_response_hours == 12
    # An old estate without a property company: the community office takes property matters on.
    assert KB.community("laoyuan").property is None
    assert "property" not in codes and config.suggest("property", None, None) == "office"


def test_which_appeals_go_to_the_city() -> None:
    def to_city(value: str | list[str]) -> tuple[bool, bool, bool]:
        profile = KB.community("demo").model_copy(update={"case_desk": CaseDeskProfile(to_city=value)})
        config = case_desk_config(profile, default_first_response_hours=24)
        return (
            config.goes_to_city("repairs", "x"),
            config.goes_to_city("municipal", None),
            config.goes_to_city("noise", "street_vendor_noise"),
        )

    assert to_city("all") == (True, True, True)
    assert to_city("none") == (False, False, False)
    assert to_city(["municipal", "street_vendor_noise"]) == (False, True, True)


def test_bad_handler_profiles_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown party"):
        HandlerProfile(code="x", name="某单位", kind="department", parties=["mayor"])
    with pytest.raises(ValidationError, match="unknown sub"):
        HandlerProfile(code="x", name="某单位", kind="department", parties=["department/mars"])
    with pytest.raises(ValidationError, match="lower-case"):
        HandlerProfile(code="物业", name="某单位", kind="property")
    with pytest.raises(ValidationError, match="share a code"):
        CaseDeskProfile(
            handlers=[
                HandlerProfile(code="a", name="甲单位", kind="property"),
                HandlerProfile(code="a", name="乙单位", kind="grid"),
            ]
        )
    with pytest.raises(ValidationError, match="to_city"):
        CaseDeskProfile(to_city="sometimes")
