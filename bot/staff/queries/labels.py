"""How the console shows codes: every code the database keeps (platforms, statuses, categories, parties,
appeal event kinds, actors, audit actions and their details) read in Chinese, in one place.

Nothing here returns a code as it is stored: an unknown code reads as a neutral word ("其他"), and the
details of an audit entry or an appeal event show only the keys listed here, as short phrases; any other
key is left out rather than dumped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import parse_qsl

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

# Where residents write from (``Chat.platform``, ``Conversation.platform``, ``Appeal.origin_platform``).
PLATFORM_LABELS = {
    "rest": "网页聊天",
    "web": "网页聊天",
    "wechat": "微信",
    "wecom": "企业微信",
    "telegram": "Telegram",
    "terminal": "测试终端",
}

CHAT_TYPE_LABELS = {"private": "私聊", "group": "群聊"}

# ``AppealEvent.kind``.
EVENT_KIND_LABELS = {
    "status": "状态变更",
    "note": "处理说明",
    "rating": "居民评价",
    "comment": "居民意见",
    "supporter": "居民附议",
    "forwarded": "已转市平台",
    "overdue": "超期提醒",
    "flag": "需要关注",
    "assigned": "派单",
    "returned": "退回社区",
}

# Who an appeal event names (``AppealEvent.actor``): a role with a person id, or a part of the system.
ACTOR_ROLE_LABELS = {"resident": "居民", "staff": "工作人员", "leader": "楼长", "handler": "处理单位"}
SYSTEM_ACTOR_LABELS = {"huiyin": "回音（系统）", "bot": "回音（系统）", "backend": "市平台"}

RATING_LABELS = {"satisfied": "满意", "basic": "基本满意", "unsatisfied": "不满意"}

FLAG_REASON_LABELS = {
    "delivery_failed": "未能送达市平台",
    "backend_rejected": "市平台未接收",
    "no_backend": "本社区未接入市平台",
    "overdue": "首次答复超期",
    "notify_failed": "未能通知居民",
    "unsatisfied": "居民不满意",
    "returned": "处理单位退回",
    "resolution_overdue": "办结超期",
}

# ``AuditEntry.action``.
ACTION_LABELS = {
    "console.login": "登录工作台",
    "console.login_failed": "登录失败",
    "console.logout": "退出工作台",
    "conversation.view": "查看对话",
    "appeal.view": "查看诉求",
    "appeal.phone_view": "查看居民电话",
    "appeal.phone_sent": "把居民电话发给处理单位",
    "person.erase": "删除居民个人信息",
    "person.export": "查看居民个人信息",
    "appeal.withdraw": "代居民撤回诉求",
    "appeals.export": "导出诉求",
    "handoff.take": "接入对话",
    "handoff.reply": "回复居民",
    "handoff.note": "添加内部备注",
    "handoff.release": "结束人工服务",
    "handoff.auto_release": "自动结束人工服务",
    "canned.create": "添加快捷回复",
    "canned.delete": "删除快捷回复",
    "chat.bind": "绑定居民群",
    "chat.bind_staff": "设为工作群",
    "invite.issue": "生成邀请码",
    "invite.redeem": "使用邀请码加入",
    "community.create": "创建社区",
    "staff.create": "开通工作人员账号",
    "staff.grant": "授予社区权限",
    "staff.revoke": "收回社区权限",
    "staff.set_password": "重设密码",
    "staff.activate": "启用账号",
    "staff.deactivate": "停用账号",
    "appeal.accept": "受理诉求",
    "appeal.assign": "派单",
    "appeal.to_city": "转市平台",
    "appeal.progress": "填写进展",
    "appeal.done": "办结诉求",
    "appeal.return": "不予受理",
    "appeal.handback": "退回社区",
    "appeal.file_from_conversation": "从对话登记诉求",
    "chat.bind_handler": "绑定处理单位群",
    "handler.save": "保存处理单位",
    "handler.member_add": "添加处理单位人员",
}

ROLE_LABELS = {"resident": "居民", "building_leader": "楼长", "staff": "工作人员"}

VIA_LABELS = {"console": "在工作台", "chat": "在聊天中", "cli": "由管理员在后台", "auto": "长时间无人回复"}

OTHER = "其他"


def category_label(code: str | None) -> str:
    if not code:
        return ""
    try:
        return CATEGORY_LABELS[Category(code)]
    except ValueError:
        return OTHER


def party_label(code: str | None) -> str:
    if not code:
        return ""
    return PARTY_LABELS.get(code, OTHER)


def status_label(code: str | None) -> str:
    if not code:
        return ""
    try:
        return AppealStatus(code).label
    except ValueError:
        return OTHER


def platform_label(code: str | None) -> str:
    if not code:
        return ""
    return PLATFORM_LABELS.get(code, OTHER)


def chat_type_label(code: str | None) -> str:
    return CHAT_TYPE_LABELS.get(code or "", "")


def event_kind_label(code: str | None) -> str:
    return EVENT_KIND_LABELS.get(code or "", OTHER)


def action_label(code: str | None) -> str:
    return ACTION_LABELS.get(code or "", OTHER)


def actor_person_id(actor: str | None) -> int | None:
    """The person id in an actor such as ``resident:12`` or ``staff:3`` (None for the system's actors)."""
    role, _, number = (actor or "").partition(":")
    return int(number) if role in ACTOR_ROLE_LABELS and number.isdigit() else None


def actor_label(actor: str | None, names: Mapping[int, str]) -> str:
    """``resident:12`` → "居民 张三", ``staff:3`` → "工作人员 李四", ``backend`` → "市平台".

    ``names`` are the people's names by person id, looked up by the page's query (see
    :func:`bot.staff.queries.actor_names`); a person not found reads as the role alone.
    """
    if not actor:
        return ""
    if actor in SYSTEM_ACTOR_LABELS:
        return SYSTEM_ACTOR_LABELS[actor]
    role = actor.partition(":")[0]
    if role not in ACTOR_ROLE_LABELS:
        return OTHER
    person = actor_person_id(actor)
    name = names.get(person, "") if person is not None else ""
    return f"{ACTOR_ROLE_LABELS[role]} {name}".strip()


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def filters_phrase(query: str) -> str:
    """The appeal-list filters of an export (``status=submitted&building=3``) as staff chose them."""
    readers: dict[str, Callable[[str], str]] = {
        "status": lambda v: "超期未答复" if v == "overdue" else status_label(v),
        "building": lambda v: f"{v}栋",
        "category": category_label,
        "party": party_label,
        "q": lambda v: f"搜索“{v}”",
    }
    parts = [readers[k](v) for k, v in parse_qsl(query or "") if k in readers and v]
    return "筛选：" + "、".join(p for p in parts if p) if parts else "全部诉求"


def audit_detail(action: str, detail: Mapping[str, Any] | None) -> list[str]:
    """An audit entry's details as short phrases ("在工作台", "12 字", "使用快捷回复"); other keys hidden."""
    detail = detail or {}
    out: list[str] = []
    if (via := VIA_LABELS.get(_text(detail.get("via")))) is not None:
        out.append(via)
    if detail.get("was") == "waiting":
        out.append("移出等待队列")
    elif detail.get("was") == "active":
        out.append("交还机器人")
    if (chars := _count(detail.get("chars"))) is not None:
        out.append(f"{chars} 字")
    if detail.get("canned"):
        out.append("使用快捷回复")
    if (rows := _count(detail.get("rows"))) is not None:
        out.append(f"{rows} 条")
    if action == "appeals.export":
        out.append(filters_phrase(_text(detail.get("filters"))))
    if title := _text(detail.get("title")):
        out.append(f"「{title}」")
    if platform := _text(detail.get("platform")):
        out.append(platform_label(platform))
    if role := ROLE_LABELS.get(_text(detail.get("role"))):
        out.append(f"身份：{role}")
    buildings = detail.get("buildings")
    if isinstance(buildings, list) and buildings:
        out.append("楼栋：" + "、".join(f"{b}栋" for b in buildings if isinstance(b, str | int)))
    if account := _text(detail.get("account")):
        out.append(f"账号 {account}")
    if client := _text(detail.get("client")):
        out.append(f"来自 {client}")
    return out


def event_detail(payload: Mapping[str, Any] | None, tz: tzinfo) -> list[str]:
    """An appeal event's payload as short phrases ("评价：满意", "共 3 人反映"); other keys hidden."""
    payload = payload or {}
    out: list[str] = []
    if rating := RATING_LABELS.get(_text(payload.get("rating"))):
        out.append(f"评价：{rating}")
    if (supporters := _count(payload.get("supporters"))) is not None:
        out.append(f"共 {supporters} 人反映")
    if reason := FLAG_REASON_LABELS.get(_text(payload.get("reason"))):
        out.append(reason)
    if backend_id := _text(payload.get("backend_id")):
        out.append(f"市平台编号 {backend_id}")
    if instruction := _text(payload.get("instruction")):
        out.append(f"给处理单位的说明：{instruction}")
    if due := _text(payload.get("due_at")):
        try:
            out.append("答复期限 " + datetime.fromisoformat(due).astimezone(tz).strftime("%m-%d %H:%M"))
        except ValueError:
            pass
    return out


def appeal_place(appeal: Appeal) -> str:
    return place_text(appeal.building, appeal.unit, appeal.room, appeal.place)
