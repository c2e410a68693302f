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
from siyu.broadcasts.models import Broadcast, BroadcastChunk, BroadcastRecipient
from siyu.callbacks.models import CallbackInbox, InboxStatus
from siyu.compliance.models import ComplaintSignal, OptOut, ReachPause, ReachPolicy
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
from siyu.segments.models import CustomerField, Segment, SegmentChange, SegmentIndexVersion, SegmentSnapshot
from siyu.sync.models import SyncRun, SyncStatus
from siyu.tags.models import FollowTag, Tag, TagGroup
from siyu.timeline.models import CustomerEvent

__all__ = [
    "ApiToken",
    "AuditLog",
    "Base",
    "Broadcast",
    "BroadcastChunk",
    "BroadcastRecipient",
    "CallbackInbox",
    "Channel",
    "ChannelGroup",
    "ComplaintSignal",
    "ConsoleUser",
    "Corp",
    "Customer",
    "CustomerEvent",
    "CustomerExport",
    "CustomerField",
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
    "OptOut",
    "OutboxStatus",
    "ReachPause",
    "ReachPolicy",
    "Role",
    "Segment",
    "SegmentChange",
    "SegmentIndexVersion",
    "SegmentSnapshot",
    "SyncRun",
    "SyncStatus",
    "Tag",
    "TagGroup",
    "WeComOutbox",
    "WeComToken",
    "WelcomeSend",
    "WelcomeTemplate",
]
