"""The appeal list as CSV, for staff to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import tzinfo

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Appeal, Community
from bot.dialog.slots import mask_personal
from bot.staff.queries.appeals import AppealFilters, handler_names, people
from bot.staff.queries.cases import handlers_seeing_contact
from bot.staff.queries.labels import (
    category_label,
    chat_type_label,
    party_label,
    platform_label,
    status_label,
)

CSV_LIMIT = 50_000

CSV_COLUMNS = [
    "编号",
    "社区",
    "状态",
    "提交时间",
    "首次答复期限",
    "楼栋",
    "单元",
    "房号",
    "公共位置",
    "问题描述",
    "分类",
    "责任方",
    "处理单位",
    "办结期限",
    "紧急",
    "反映人",
    "代反映楼长",
    "联系电话",
    "来源",
]


async def appeals_csv(
    session: AsyncSession,
    community_ids: Sequence[int],
    filters: AppealFilters,
    tz: tzinfo,
    handler_ids: Sequence[int] = (),
) -> tuple[str, int]:
    """The filtered appeals as CSV text (with a BOM so Excel reads the Chinese), and the row count."""
    where = and_(*filters.clauses(community_ids, handler_ids))
    rows = list(
        (await session.execute(select(Appeal).where(where).order_by(Appeal.id).limit(CSV_LIMIT))).scalars()
    )
    names = await people(
        session, {a.reporter_id for a in rows} | {a.relayed_by_id for a in rows if a.relayed_by_id}
    )
    shown = {a.community_id for a in rows} | set(community_ids)
    communities = {
        c.id: c for c in (await session.execute(select(Community).where(Community.id.in_(shown)))).scalars()
    }
    handlers = await handler_names(session, community_ids, handler_ids)
    seeing = await handlers_seeing_contact(session, list({a.handler_id for a in rows if a.handler_id}))
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for a in rows:
        reporter = names.get(a.reporter_id)
        leader = names.get(a.relayed_by_id) if a.relayed_by_id else None
        if a.community_id not in community_ids and a.handler_id not in seeing:
            # A department's person: no contact, flat or name (see queries.cases.contact_hidden).
            a = _without_contact(a)
            reporter = leader = None
        writer.writerow(
            [
                a.public_id,
                communities[a.community_id].name if a.community_id in communities else a.community_id,
                status_label(a.status),
                a.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                a.first_response_due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
                if a.first_response_due_at
                else "",
                a.building or "",
                a.unit or "",
                a.room or "",
                a.place or "",
                _csv_safe(a.description),
                category_label(a.category),
                party_label(a.responsible_party),
                handlers.get(a.handler_id, "") if a.handler_id else "",
                a.resolution_due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if a.resolution_due_at else "",
                "是" if a.urgent else "",
                _csv_safe(reporter.display_name if reporter else ""),
                _csv_safe(leader.display_name if leader else ""),
                a.contact_phone or "",
                " ".join(
                    filter(None, (platform_label(a.origin_platform), chat_type_label(a.origin_chat_type)))
                ),
            ]
        )
    return buffer.getvalue(), len(rows)


def _without_contact(appeal: Appeal) -> Appeal:
    """A detached copy of ``appeal`` for reading without the resident's contact, flat and phones."""
    shown = Appeal(**{c.key: getattr(appeal, c.key) for c in Appeal.__table__.columns})
    shown.room, shown.contact_phone = None, None
    shown.description = mask_personal(appeal.description)
    shown.place = mask_personal(appeal.place) if appeal.place else appeal.place
    return shown


def _csv_safe(text: str) -> str:
    """Residents write the text: keep a spreadsheet from reading it as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
