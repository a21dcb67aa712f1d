"""The states and roles stored as plain strings: an appeal's status, a role, a handoff's status."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    RESIDENT = "resident"
    BUILDING_LEADER = "building_leader"
    STAFF = "staff"


class AppealStatus(StrEnum):
    """The life of an appeal. ``submitted`` is where huiyin leaves it; the backend moves it on."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    CLOSED = "closed"
    REOPENED = "reopened"  # the resident was not satisfied with the result: handled again
    WITHDRAWN = "withdrawn"  # the resident took it back

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    AppealStatus.SUBMITTED: "已提交",
    AppealStatus.ACCEPTED: "已受理",
    AppealStatus.ASSIGNED: "已派单",
    AppealStatus.IN_PROGRESS: "处理中",
    AppealStatus.RESOLVED: "已办结",
    AppealStatus.REJECTED: "未受理",
    AppealStatus.CLOSED: "已关闭",
    AppealStatus.REOPENED: "重新办理中",
    AppealStatus.WITHDRAWN: "已撤回",
}

OPEN_STATUSES = (
    AppealStatus.SUBMITTED,
    AppealStatus.ACCEPTED,
    AppealStatus.ASSIGNED,
    AppealStatus.IN_PROGRESS,
    AppealStatus.REOPENED,
)


class HandoffStatus(StrEnum):
    WAITING = "waiting"  # in the queue; the bot still answers
    ACTIVE = "active"  # a person holds the conversation; the bot is silent
    CLOSED = "closed"
