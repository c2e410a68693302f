"""Typed WeCom payloads: what the client returns, shaped as WeCom sends them.

Models ignore unknown fields (WeCom adds fields over time) and tolerate the shape
differences between endpoints the reference documents (e.g. remark_company vs
remark_corp_name, integer vs string remark_mobiles).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Department(Payload):
    id: int
    name: str = ""
    name_en: str = ""
    parentid: int = 0
    order: int = 0
    department_leader: list[str] = Field(default_factory=list)


class User(Payload):
    userid: str
    name: str = ""
    department: list[int] = Field(default_factory=list)
    main_department: int = 0
    position: str = ""
    gender: int = 0
    # 1 active, 2 disabled, 4 not activated, 5 quit the corp
    status: int = 1


class TagRef(Payload):
    """A tag on a follow as `get` returns it (batch/get_by_user gives only tag_id)."""

    tag_id: str = ""
    group_name: str = ""
    tag_name: str = ""
    type: int = 1


class ExternalContact(Payload):
    external_userid: str
    name: str = ""
    position: str = ""
    avatar: str = ""
    corp_name: str = ""
    corp_full_name: str = ""
    type: int = 1
    gender: int = 0
    unionid: str = ""
    external_profile: dict[str, object] | None = None


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


class FollowInfo(Payload):
    """One follow: `follow_user[]` entries of get, or `follow_info` of batch/get_by_user."""

    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tag_id: list[str] = Field(default_factory=list)
    tags: list[TagRef] = Field(default_factory=list)
    remark_corp_name: str = Field("", validation_alias="remark_corp_name")
    remark_company: str = ""
    remark_mobiles: list[str] = Field(default_factory=list)
    add_way: int = 0
    oper_userid: str = ""
    state: str = ""

    _mobiles = field_validator("remark_mobiles", "tag_id", mode="before")(_strings)

    def corp_tag_ids(self) -> list[str]:
        """Corp tag ids whichever endpoint this came from (personal tags have no id and are skipped)."""
        if self.tag_id:
            return list(self.tag_id)
        return [t.tag_id for t in self.tags if t.tag_id and t.type == 1]

    def remark_corp(self) -> str:
        return self.remark_corp_name or self.remark_company


class ExternalContactDetail(Payload):
    """externalcontact/get: a customer and every employee following them."""

    external_contact: ExternalContact
    follow_user: list[FollowInfo] = Field(default_factory=list)


class ContactWithFollow(Payload):
    """One row of batch/get_by_user: a customer and its follow by one employee."""

    external_contact: ExternalContact
    follow_info: FollowInfo


class ContactPage(Payload):
    external_contact_list: list[ContactWithFollow] = Field(default_factory=list)
    next_cursor: str = ""


class CorpTag(Payload):
    id: str
    name: str
    create_time: int = 0
    order: int = 0
    deleted: bool = False


class CorpTagGroup(Payload):
    group_id: str
    group_name: str
    create_time: int = 0
    order: int = 0
    deleted: bool = False
    tag: list[CorpTag] = Field(default_factory=list)


class GroupChatRef(Payload):
    chat_id: str
    status: int = 0


class GroupChatPage(Payload):
    group_chat_list: list[GroupChatRef] = Field(default_factory=list)
    next_cursor: str = ""


class Invitor(Payload):
    userid: str = ""


class GroupChatMember(Payload):
    userid: str
    type: int
    join_time: int = 0
    join_scene: int = 0
    invitor: Invitor | None = None
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""
    state: str = ""


class GroupChatDetail(Payload):
    chat_id: str
    name: str = ""
    owner: str = ""
    create_time: int = 0
    notice: str = ""
    member_list: list[GroupChatMember] = Field(default_factory=list)
    admin_list: list[Invitor] = Field(default_factory=list)
    member_version: str = ""


class ContactWayCreated(Payload):
    """add_contact_way: the config id, and the QR image URL (scene 2 only)."""

    config_id: str
    qr_code: str = ""


class ContactWay(Payload):
    """get_contact_way's `contact_way` (an object today; a one-element list in older answers)."""

    config_id: str
    type: int = 0
    scene: int = 0
    style: int = 0
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    qr_code: str = ""
    user: list[str] = Field(default_factory=list)
    party: list[int] = Field(default_factory=list)
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""


class JoinWay(Payload):
    """groupchat/get_join_way's `join_way`."""

    config_id: str
    scene: int = 0
    remark: str = ""
    auto_create_room: int = 0
    room_base_name: str = ""
    room_base_id: int = 0
    chat_id_list: list[str] = Field(default_factory=list)
    qr_code: str = ""
    state: str = ""
