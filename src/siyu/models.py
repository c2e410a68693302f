"""Every ORM model, imported once so metadata (and Alembic) sees all tables."""

from siyu.callbacks.models import CallbackInbox, InboxStatus
from siyu.contacts.models import Customer, Department, Employee, EmployeeStatus, Follow, FollowStatus
from siyu.core.db import Base
from siyu.corp.models import AuditLog, Corp, WeComToken
from siyu.groups.models import GroupChat, GroupMember, GroupStatus
from siyu.sync.models import SyncRun, SyncStatus
from siyu.tags.models import FollowTag, Tag, TagGroup

__all__ = [
    "AuditLog",
    "Base",
    "CallbackInbox",
    "Corp",
    "Customer",
    "Department",
    "Employee",
    "EmployeeStatus",
    "Follow",
    "FollowStatus",
    "FollowTag",
    "GroupChat",
    "GroupMember",
    "GroupStatus",
    "InboxStatus",
    "SyncRun",
    "SyncStatus",
    "Tag",
    "TagGroup",
    "WeComToken",
]
