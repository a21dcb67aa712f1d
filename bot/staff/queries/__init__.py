"""What the console reads: appeals with filters, the dashboard's figures, recent conversations.

Every function takes the community ids the staff member serves (and the handler ids they act for) and
never returns anything outside them; the routes add nothing to a query that could widen it.

The read models live by page: :mod:`.appeals` (the list and one appeal), :mod:`.export` (CSV),
:mod:`.dashboard`, :mod:`.cases` (the case desk on an appeal's page), :mod:`.activity` (recent
conversations, audit log) and :mod:`.labels` (how codes read); every name is importable from
``bot.staff.queries``.
"""

from bot.staff.queries.activity import AuditRow, RecentConversation, audit_entries, recent_conversations
from bot.staff.queries.appeals import (
    PAGE_SIZE,
    AppealFilters,
    AppealPage,
    actor_names,
    appeal_events,
    appeal_in_scope,
    appeals,
    handler_names,
    people,
    visible,
)
from bot.staff.queries.cases import (
    CaseActions,
    Deadline,
    case_actions,
    contact_hidden,
    deadlines,
    handler,
    handler_communities,
)
from bot.staff.queries.dashboard import Dashboard, dashboard
from bot.staff.queries.export import CSV_COLUMNS, CSV_LIMIT, appeals_csv
from bot.staff.queries.labels import (
    PARTY_LABELS,
    action_label,
    actor_label,
    appeal_place,
    category_label,
    chat_type_label,
    event_detail,
    event_kind_label,
    party_label,
    platform_label,
    status_label,
)

__all__ = [
    "CSV_COLUMNS",
    "CSV_LIMIT",
    "EVENT_KIND_LABELS",
    "PAGE_SIZE",
    "PARTY_LABELS",
    "AppealFilters",
    "AppealPage",
    "AuditRow",
    "CaseActions",
    "Dashboard",
    "Deadline",
    "RecentConversation",
    "action_label",
    "actor_label",
    "actor_names",
    "appeal_events",
    "appeal_in_scope",
    "appeal_place",
    "appeals",
    "appeals_csv",
    "audit_entries",
    "case_actions",
    "category_label",
    "chat_type_label",
    "contact_hidden",
    "dashboard",
    "deadlines",
    "event_detail",
    "event_kind_label",
    "handler",
    "handler_communities",
    "handler_names",
    "party_label",
    "people",
    "platform_label",
    "recent_conversations",
    "status_label",
    "visible",
]
