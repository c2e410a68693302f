"""Every ORM model, imported once so metadata (and Alembic) sees all tables."""

from siyu.accounts.models import ApiToken, ConsoleUser, Role
from siyu.acquisition.models import (
    Channel,
    ChannelGroup,
    GroupCode,
    GroupCodeJoin,
    Material,
    WelcomeSend,
    WelcomeTemplate,
)
from siyu.callbacks.models import CallbackInbox, InboxStatus
from siyu.contacts.models import (
    Customer,
    CustomerExport,
    Department,
    Employee,
    EmployeeStatus,
    Follow,
    FollowStatus,
)
from siyu.core.db import Base
from siyu.corp.models import AuditLog, Corp, WeComToken
from siyu.groups.models import GroupChat, GroupMember, GroupStatus
from siyu.outbox.models import OutboxStatus, WeComOutbox
from siyu.sync.models import SyncRun, SyncStatus
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.timeline.models import CustomerEvent

__all__ = [
    "ApiToken",
    "AuditLog",
    "Base",
    "CallbackInbox",
    "Channel",
    "ChannelGroup",
    "ConsoleUser",
    "Corp",
    "Customer",
    "CustomerEvent",
    "CustomerExport",
    "Department",
    "Employee",
    "EmployeeStatus",
    "Follow",
    "FollowStatus",
    "FollowTag",
    "GroupChat",
    "GroupCode",
    "GroupCodeJoin",
    "GroupMember",
    "GroupStatus",
    "InboxStatus",
    "Material",
    "OutboxStatus",
    "Role",
    "SyncRun",
    "SyncStatus",
    "Tag",
    "TagGroup",
    "WeComOutbox",
    "WeComToken",
    "WelcomeSend",
    "WelcomeTemplate",
]
