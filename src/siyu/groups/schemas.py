"""API shapes for customer groups (客户群) and their members."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

# WeCom's groupchat/get join_scene.
JOIN_SCENES = {
    1: "invited directly by a member",
    2: "invited by a member's link",
    3: "scanned the group QR code",
}


class GroupChatRead(BaseModel):
    id: int
    chat_id: str
    name: str
    owner_userid: str
    owner_name: str
    internal_members: int
    external_members: int
    status: str
    created_at: datetime | None


class GroupChatPage(BaseModel):
    items: list[GroupChatRead]
    # Pass as ?after= for the next page (newest first); None on the last page.
    next_after: int | None


class GroupMemberRead(BaseModel):
    userid: str
    name: str
    group_nickname: str
    type: str  # employee | customer
    customer_id: int | None
    join_time: datetime | None
    join_scene: int
    join_scene_label: str
    invitor_userid: str
    invitor_name: str


class GroupChatDetail(GroupChatRead):
    notice: str
    members: list[GroupMemberRead]
