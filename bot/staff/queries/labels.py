"""How the console shows codes: categories, responsible parties and statuses in Chinese, an appeal's place."""

from __future__ import annotations

from bot.db.models import Appeal, AppealStatus
from bot.handoff.summary import place_text
from kb.model import CATEGORY_LABELS, Category

PARTY_LABELS = {
    "property": "物业",
    "community": "社区",
    "street": "街道",
    "owners_committee": "业委会",
    "owner": "业主自行处理",
    "department": "职能部门",
    "utility": "公用事业单位",
    "emergency": "紧急救援",
    "hotline": "12345热线",
    "developer": "开发商",
}


def category_label(code: str | None) -> str:
    if not code:
        return ""
    try:
        return CATEGORY_LABELS[Category(code)]
    except ValueError:
        return code


def party_label(code: str | None) -> str:
    return PARTY_LABELS.get(code or "", code or "")


def status_label(code: str) -> str:
    try:
        return AppealStatus(code).label
    except ValueError:
        return code


def appeal_place(appeal: Appeal) -> str:
    return place_text(appeal.building, appeal.unit, appeal.room, appeal.place)
