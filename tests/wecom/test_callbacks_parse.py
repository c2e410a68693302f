"""Callback envelope and event parsing: every §4 example, the XML variants, hostile XML, dedupe."""

from __future__ import annotations

import dataclasses

import pytest

from siyu.wecom.callbacks import (
    CallbackEvent,
    CallbackParseError,
    ContactEvent,
    EnvelopeIn,
    ExternalChatEvent,
    ExternalContactEvent,
    ExternalTagEvent,
    UnknownEvent,
    dedupe_key,
    parse_envelope,
    parse_event,
)
from siyu.wecom.crypto import MsgCrypt, envelope_xml
from siyu.wecom.errors import WeComError

HEAD = (
    "<ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
    "<CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>"
)


def event_xml(event: str, change_type: str, body: str, *, head: str = HEAD) -> bytes:
    """An event in the official pretty-printed shape (tabs and newlines, as in reference §4)."""
    lines = [head, f"<Event><![CDATA[{event}]]></Event>", f"<ChangeType><![CDATA[{change_type}]]></ChangeType>"]
    return ("<xml>\n\t" + "\n\t".join([*lines, body]) + "\n</xml>").encode()


def contact_xml(change_type: str, body: str) -> bytes:
    return event_xml("change_external_contact", change_type, body)


PAIR = (
    "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACH71w]]></ExternalUserID>"
)
CHAT_UPDATE = """<ChatId><![CDATA[CHAT_ID]]></ChatId>
	<UpdateDetail><![CDATA[add_member]]></UpdateDetail>
	<JoinScene>1</JoinScene>
	<QuitScene>0</QuitScene>
	<MemChangeCnt>10</MemChangeCnt>
	<MemChangeList>
		<Item>Jack</Item>
		<Item>Rose</Item>
	</MemChangeList>
	<LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer>
	<CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer>"""
CREATE_USER = """<UserID><![CDATA[zhangsan]]></UserID>
	<Name><![CDATA[张三]]></Name>
	<Department><![CDATA[1,2,3]]></Department>
	<MainDepartment>1</MainDepartment>
	<IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept>
	<Position><![CDATA[产品经理]]></Position>
	<Mobile>13800000000</Mobile>
	<Status>1</Status>
	<Alias><![CDATA[zhangsan]]></Alias>
	<ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item></ExtAttr>"""

EXTERNAL_USER = "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w"
EVENT_CASES = [
    pytest.param(
        contact_xml(
            "add_external_contact",
            "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]>"
            "</ExternalUserID><State><![CDATA[teststate]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>",
        ),
        ExternalContactEvent,
        {
            "change_type": "add_external_contact",
            "user_id": "zhangsan",
            "external_user_id": "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA",
            "state": "teststate",
            "welcome_code": "WELCOMECODE",
            "source": "",
        },
        id="add_external_contact",
    ),
    pytest.param(
        contact_xml("add_half_external_contact", PAIR + "<State><![CDATA[s1]]></State><WelcomeCode>WC</WelcomeCode>"),
        ExternalContactEvent,
        {"change_type": "add_half_external_contact", "state": "s1", "welcome_code": "WC"},
        id="add_half_external_contact",
    ),
    pytest.param(
        contact_xml("edit_external_contact", PAIR),
        ExternalContactEvent,
        {"user_id": "zhangsan", "external_user_id": EXTERNAL_USER, "state": "", "welcome_code": ""},
        id="edit_external_contact",
    ),
    pytest.param(
        contact_xml("del_external_contact", PAIR + "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>"),
        ExternalContactEvent,
        {"change_type": "del_external_contact", "external_user_id": EXTERNAL_USER, "source": "DELETE_BY_TRANSFER"},
        id="del_external_contact",
    ),
    pytest.param(
        contact_xml("del_follow_user", PAIR),
        ExternalContactEvent,
        {"change_type": "del_follow_user", "user_id": "zhangsan", "source": ""},
        id="del_follow_user",
    ),
    pytest.param(
        contact_xml("transfer_fail", "<FailReason><![CDATA[customer_refused]]></FailReason>" + PAIR),
        ExternalContactEvent,
        {"change_type": "transfer_fail", "fail_reason": "customer_refused", "external_user_id": EXTERNAL_USER},
        id="transfer_fail",
    ),
    pytest.param(
        contact_xml("msg_audit_approved", PAIR),
        ExternalContactEvent,
        {"change_type": "msg_audit_approved", "user_id": "zhangsan", "external_user_id": EXTERNAL_USER},
        id="msg_audit_approved",
    ),
    pytest.param(
        event_xml("change_external_chat", "create", "<ChatId><![CDATA[CHAT_ID]]></ChatId>"),
        ExternalChatEvent,
        {"change_type": "create", "chat_id": "CHAT_ID", "join_scene": None, "mem_change_list": ()},
        id="chat-create",
    ),
    pytest.param(
        event_xml("change_external_chat", "dismiss", "<ChatId><![CDATA[CHAT_ID]]></ChatId>"),
        ExternalChatEvent,
        {"change_type": "dismiss", "chat_id": "CHAT_ID", "update_detail": ""},
        id="chat-dismiss",
    ),
    pytest.param(
        event_xml("change_external_chat", "update", CHAT_UPDATE),
        ExternalChatEvent,
        {
            "chat_id": "CHAT_ID",
            "update_detail": "add_member",
            "join_scene": 1,
            "quit_scene": 0,
            "mem_change_cnt": 10,
            "mem_change_list": ("Jack", "Rose"),
            "last_mem_ver": "9c3f97c2ada667dfb5f6d03308d963e1",
            "cur_mem_ver": "71217227bbd112ecfe3a49c482195cb4",
        },
        id="chat-update-official",
    ),
    pytest.param(
        event_xml(
            "change_external_chat",
            "update",
            "<ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId><UpdateDetail><![CDATA[change_name]]>"
            "</UpdateDetail><JoinScene>0</JoinScene><MemChangeCnt>2</MemChangeCnt>"
            "<LastMemVer><![CDATA[aaa]]></LastMemVer><CurMemVer><![CDATA[bbb]]></CurMemVer>",
        ),
        ExternalChatEvent,
        {
            "update_detail": "change_name",
            "join_scene": 0,
            "quit_scene": None,
            "mem_change_cnt": 2,
            "mem_change_list": (),
            "last_mem_ver": "aaa",
            "cur_mem_ver": "bbb",
        },
        id="chat-update-captured-change_name",
    ),
    pytest.param(
        event_xml(
            "change_external_tag",
            "create",
            "<Id><![CDATA[TAG_ID]]></Id><TagType><![CDATA[tag]]></TagType><StrategyId>1</StrategyId>",
            head=HEAD.replace("toUser", "CORPID"),
        ),
        ExternalTagEvent,
        {"to_user_name": "CORPID", "change_type": "create", "id": "TAG_ID", "tag_type": "tag", "strategy_id": "1"},
        id="tag-create",
    ),
    pytest.param(
        event_xml("change_external_tag", "delete", "<Id><![CDATA[GROUP_ID]]></Id><TagType>tag_group</TagType>"),
        ExternalTagEvent,
        {"change_type": "delete", "id": "GROUP_ID", "tag_type": "tag_group", "strategy_id": ""},
        id="tag-group-delete",
    ),
    pytest.param(
        event_xml(
            "change_external_tag",
            "shuffle",
            "<Id><![CDATA[TAG_ID]]></Id><StrategyId><![CDATA[STRATEGY_ID]]></StrategyId>",
        ),
        ExternalTagEvent,
        {"change_type": "shuffle", "id": "TAG_ID", "tag_type": "", "strategy_id": "STRATEGY_ID"},
        id="tag-shuffle",
    ),
    pytest.param(
        event_xml("change_contact", "create_user", CREATE_USER),
        ContactEvent,
        {
            "user_id": "zhangsan",
            "name": "张三",
            "department_ids": (1, 2, 3),
            "main_department": 1,
            "position": "产品经理",
            "status": 1,
            "alias": "zhangsan",
            "party_id": None,
        },
        id="create_user",
    ),
    pytest.param(
        event_xml(
            "change_contact",
            "update_user",
            "<UserID>zhangsan</UserID><NewUserID><![CDATA[zhangsan001]]></NewUserID><Department>4</Department>",
        ),
        ContactEvent,
        {"user_id": "zhangsan", "new_user_id": "zhangsan001", "department_ids": (4,), "name": ""},
        id="update_user",
    ),
    pytest.param(
        event_xml("change_contact", "delete_user", "<UserID><![CDATA[zhangsan]]></UserID>"),
        ContactEvent,
        {"change_type": "delete_user", "user_id": "zhangsan", "department_ids": ()},
        id="delete_user",
    ),
    pytest.param(
        event_xml(
            "change_contact",
            "create_party",
            "<Id>2</Id><Name><![CDATA[张三]]></Name><ParentId><![CDATA[1]]></ParentId><Order>1</Order>",
        ),
        ContactEvent,
        {"party_id": 2, "name": "张三", "parent_id": 1, "order": 1, "user_id": ""},
        id="create_party",
    ),
    pytest.param(
        event_xml("change_contact", "update_party", "<Id>2</Id><Name><![CDATA[销售部]]></Name><ParentId>3</ParentId>"),
        ContactEvent,
        {"party_id": 2, "name": "销售部", "parent_id": 3, "order": None},
        id="update_party",
    ),
    pytest.param(
        event_xml("change_contact", "delete_party", "<Id>2</Id>"),
        ContactEvent,
        {"change_type": "delete_party", "party_id": 2},
        id="delete_party",
    ),
    pytest.param(
        event_xml(
            "change_contact",
            "update_tag",
            "<TagId>1</TagId><AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems>"
            "<DelUserItems><![CDATA[wangwu]]></DelUserItems><AddPartyItems><![CDATA[1,2]]></AddPartyItems>",
        ),
        ContactEvent,
        {
            "tag_id": 1,
            "add_user_ids": ("zhangsan", "lisi"),
            "del_user_ids": ("wangwu",),
            "add_party_ids": (1, 2),
            "del_party_ids": (),
        },
        id="update_tag",
    ),
]


@pytest.mark.parametrize(("xml", "kind", "expected"), EVENT_CASES)
def test_reference_examples_parse_to_typed_events(
    xml: bytes, kind: type[CallbackEvent], expected: dict[str, object]
) -> None:
    # when
    event = parse_event(xml)
    # then
    assert type(event) is kind
    assert (event.create_time, event.raw) == (1403610513, xml.decode())
    assert {name: getattr(event, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("xml", "event_name"),
    [
        pytest.param(
            f"<xml>{HEAD}<Event><![CDATA[msgaudit_notify]]></Event><AgentID>1000002</AgentID></xml>".encode(),
            "msgaudit_notify",
            id="msgaudit_notify",
        ),
        pytest.param(
            f"<xml>{HEAD}<Event>kf_msg_or_event</Event><Token>ENC123</Token><OpenKfId>wk1</OpenKfId></xml>".encode(),
            "kf_msg_or_event",
            id="kf_msg_or_event",
        ),
        pytest.param(
            "<xml><ToUserName>ww1</ToUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType>"
            "<Content>你好</Content></xml>".encode(),
            "",
            id="plain-text-message",
        ),
        pytest.param(b"<xml/>", "", id="empty"),
    ],
)
def test_anything_unmodelled_is_an_unknown_event(xml: bytes, event_name: str) -> None:
    event = parse_event(xml)
    assert type(event) is UnknownEvent
    assert event.event == event_name


def test_unknown_event_keeps_its_fields() -> None:
    xml = f"<xml>{HEAD}<Event>kf_msg_or_event</Event><Token><![CDATA[ENC123]]></Token></xml>".encode()
    event = parse_event(xml)
    assert isinstance(event, UnknownEvent)
    assert dict(event.fields)["Token"] == "ENC123"


def test_third_party_suite_shape_fills_the_same_fields() -> None:
    xml = (
        b"<xml><SuiteId>ww4asffe9xxx4c0f4c</SuiteId><AuthCorpId>wxf8b4f85fxx794xxx</AuthCorpId>"
        b"<InfoType>change_external_contact</InfoType><TimeStamp>1403610513</TimeStamp>"
        b"<ChangeType>del_follow_user</ChangeType><UserID>zhangsan</UserID><ExternalUserID>wm1</ExternalUserID></xml>"
    )
    event = parse_event(xml)
    assert isinstance(event, ExternalContactEvent)
    assert (event.to_user_name, event.create_time, event.change_type, event.user_id) == (
        "wxf8b4f85fxx794xxx",
        1403610513,
        "del_follow_user",
        "zhangsan",
    )


# --- variants -----------------------------------------------------------------------------------


def bare(xml: bytes) -> bytes:
    """The same document with every CDATA section replaced by its bare text."""
    return xml.replace(b"<![CDATA[", b"").replace(b"]]>", b"")


@pytest.mark.parametrize(("xml", "kind", "expected"), EVENT_CASES)
def test_bare_text_parses_like_cdata(xml: bytes, kind: type[CallbackEvent], expected: dict[str, object]) -> None:
    with_cdata, without = parse_event(xml), parse_event(bare(xml))
    assert dataclasses.replace(without, raw=with_cdata.raw) == with_cdata


@pytest.mark.parametrize(
    "member_list",
    [
        "<MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList>",
        "<MemChangeList><Item><![CDATA[Jack]]></Item><Item><![CDATA[Rose]]></Item></MemChangeList>",
        "<MemChangeList><![CDATA[Jack,Rose]]></MemChangeList>",
        "<MemChangeList>Jack, Rose,</MemChangeList>",
        "<MemChangeList>\n\t\t<Item> Jack </Item>\n\t\t<Item>Rose</Item>\n\t\t<Item></Item>\n\t</MemChangeList>",
    ],
    ids=["items", "cdata-items", "comma-cdata", "comma-bare-trailing", "pretty-with-empty-item"],
)
def test_member_change_list_forms(member_list: str) -> None:
    xml = event_xml("change_external_chat", "update", f"<ChatId>c1</ChatId>{member_list}")
    event = parse_event(xml)
    assert isinstance(event, ExternalChatEvent)
    assert event.mem_change_list == ("Jack", "Rose")


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<JoinScene>3</JoinScene>", 3),
        ("<JoinScene><![CDATA[3]]></JoinScene>", 3),
        ("<JoinScene> 3\n</JoinScene>", 3),
        ("<JoinScene></JoinScene>", None),
        ("<JoinScene>three</JoinScene>", None),
        ("", None),
    ],
    ids=["bare", "cdata", "whitespace", "empty", "not-a-number", "absent"],
)
def test_int_fields_tolerate_text_forms(fragment: str, expected: int | None) -> None:
    event = parse_event(event_xml("change_external_chat", "update", f"<ChatId>c1</ChatId>{fragment}"))
    assert isinstance(event, ExternalChatEvent)
    assert event.join_scene == expected


def test_events_are_frozen_and_hashable() -> None:
    event = parse_event(event_xml("change_external_chat", "update", CHAT_UPDATE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.event = "other"  # type: ignore[misc]
    assert hash(event) == hash(parse_event(event_xml("change_external_chat", "update", CHAT_UPDATE)))


# --- envelope -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b"<xml>\n   <ToUserName><![CDATA[toUser]]></ToUserName>\n   <AgentID><![CDATA[toAgentID]]></AgentID>\n"
            b"   <Encrypt><![CDATA[msg_encrypt]]></Encrypt>\n</xml>",
            EnvelopeIn("toUser", "msg_encrypt", "toAgentID"),
            id="xml-reference",
        ),
        pytest.param(
            envelope_xml("ww1436e0e65a779aee", "abc+/=", "").encode(),
            EnvelopeIn("ww1436e0e65a779aee", "abc+/=", ""),
            id="xml-ours-empty-agent",
        ),
        pytest.param(
            b"<xml><Encrypt>abc</Encrypt></xml>",
            EnvelopeIn("", "abc", ""),
            id="xml-bare-encrypt-only",
        ),
        pytest.param(
            b'{"tousername": "ww1", "encrypt": "abc", "agentid": "1000002"}',
            EnvelopeIn("ww1", "abc", "1000002"),
            id="json",
        ),
        pytest.param(
            b'\xef\xbb\xbf  {"tousername": "ww1", "encrypt": "abc", "agentid": 1000002}',
            EnvelopeIn("ww1", "abc", "1000002"),
            id="json-bom-int-agent",
        ),
        pytest.param(b'{"encrypt": "abc"}', EnvelopeIn("", "abc", ""), id="json-encrypt-only"),
    ],
)
def test_parse_envelope(body: bytes, expected: EnvelopeIn) -> None:
    assert parse_envelope(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<xml><Encrypt>abc</Encrypt>",
        b"<xml><ToUserName>ww1</ToUserName></xml>",
        b"<xml><Encrypt><![CDATA[]]></Encrypt></xml>",
        b"<xml><Encrypt>   </Encrypt></xml>",
        b"{",
        b"[]",
        b'{"encrypt": ""}',
        b'{"encrypt": ["abc"]}',
        b'{"tousername": "ww1"}',
        b'{"a":' * 100_000,
    ],
    ids=[
        "empty",
        "text",
        "unclosed",
        "no-encrypt",
        "empty-encrypt",
        "blank-encrypt",
        "json-broken",
        "json-array",
        "json-empty-encrypt",
        "json-list-encrypt",
        "json-no-encrypt",
        "json-deep",
    ],
)
def test_malformed_envelope_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(CallbackParseError):
        parse_envelope(body)


@pytest.mark.parametrize(
    "body", [b"", b"<xml>", b"<xml><a></b></xml>", b"\xff\xfe"], ids=["empty", "unclosed", "mismatched", "binary"]
)
def test_malformed_event_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(CallbackParseError):
        parse_event(body)


def test_parse_error_is_a_wecom_error() -> None:
    assert issubclass(CallbackParseError, WeComError)


# --- hostile XML --------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<xml><Encrypt>&lol9;</Encrypt><Event>&lol9;</Event></xml>"""
HOSTILE = [
    pytest.param(BILLION_LAUGHS, id="billion-laughs"),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<xml><Encrypt>&xxe;</Encrypt><Event>&xxe;</Event></xml>",
        id="external-entity",
    ),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:1/evil.dtd">'
        b"<xml><Encrypt>abc</Encrypt><Event>change_contact</Event></xml>",
        id="external-dtd",
    ),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p;]>'
        b"<xml><Encrypt>abc</Encrypt></xml>",
        id="parameter-entity",
    ),
    pytest.param(
        b'<!DOCTYPE xml [<!ENTITY e "abc">]><xml><Encrypt>&e;</Encrypt><Event>x</Event></xml>',
        id="harmless-internal-entity",
    ),
    pytest.param(b"<!DOCTYPE xml><xml><Encrypt>abc</Encrypt><Event>x</Event></xml>", id="bare-doctype"),
]


@pytest.mark.parametrize("body", HOSTILE)
def test_envelope_refuses_any_dtd(body: bytes) -> None:
    with pytest.raises(CallbackParseError, match="refused"):
        parse_envelope(body)


@pytest.mark.parametrize("body", HOSTILE)
def test_event_refuses_any_dtd(body: bytes) -> None:
    with pytest.raises(CallbackParseError, match="refused"):
        parse_event(body)


# --- dedupe -------------------------------------------------------------------------------------


def test_same_xml_twice_gives_the_same_key() -> None:
    xml = event_xml("change_external_chat", "update", CHAT_UPDATE)
    assert dedupe_key(parse_event(xml)) == dedupe_key(parse_event(xml))


def test_a_retry_through_the_envelope_gives_the_same_key() -> None:
    # given one event that WeCom delivers twice: fresh random prefix, timestamp and nonce each time
    crypt = MsgCrypt("token", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee")
    xml = contact_xml("add_external_contact", PAIR + "<State>s</State><WelcomeCode>W</WelcomeCode>")
    first, retry = crypt.seal(xml, timestamp="1", nonce="1"), crypt.seal(xml, timestamp="6", nonce="2")
    assert first.encrypt != retry.encrypt
    # when
    keys = {
        dedupe_key(parse_event(crypt.decrypt_envelope(e.msg_signature, e.timestamp, e.nonce, e.encrypt)))
        for e in (first, retry)
    }
    # then
    assert len(keys) == 1


def test_formatting_differences_do_not_split_one_event() -> None:
    pretty = event_xml("change_external_chat", "update", CHAT_UPDATE)
    compact = bare(b"".join(line.strip() for line in pretty.splitlines()))
    reordered = compact.replace(
        b"<JoinScene>1</JoinScene><QuitScene>0</QuitScene>", b"<QuitScene>0</QuitScene><JoinScene>1</JoinScene>"
    )
    assert reordered != compact
    assert len({dedupe_key(parse_event(xml)) for xml in (pretty, compact, reordered)}) == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            event_xml("change_external_chat", "update", "<ChatId>c1</ChatId><UpdateDetail>add_member</UpdateDetail>"),
            event_xml("change_external_chat", "update", "<ChatId>c1</ChatId><UpdateDetail>change_name</UpdateDetail>"),
            id="update-detail",
        ),
        pytest.param(
            event_xml(
                "change_external_chat", "update", "<ChatId>c1</ChatId><MemChangeList><Item>Jack</Item></MemChangeList>"
            ),
            event_xml(
                "change_external_chat", "update", "<ChatId>c1</ChatId><MemChangeList><Item>Rose</Item></MemChangeList>"
            ),
            id="mem-change-list",
        ),
        pytest.param(
            event_xml("change_external_chat", "update", "<ChatId>c1</ChatId><CurMemVer>v2</CurMemVer>"),
            event_xml("change_external_chat", "update", "<ChatId>c1</ChatId><CurMemVer>v3</CurMemVer>"),
            id="cur-mem-ver",
        ),
        pytest.param(
            event_xml("change_external_tag", "create", "<Id>t1</Id><TagType>tag</TagType>"),
            event_xml("change_external_tag", "create", "<Id>t1</Id><TagType>tag_group</TagType>"),
            id="tag-type",
        ),
        pytest.param(
            event_xml("change_external_tag", "create", "<Id>t1</Id><TagType>tag</TagType>"),
            event_xml("change_external_tag", "create", "<Id>t2</Id><TagType>tag</TagType>"),
            id="tag-id",
        ),
        pytest.param(
            contact_xml("add_external_contact", PAIR + "<State>channel-a</State>"),
            contact_xml("add_external_contact", PAIR + "<State>channel-b</State>"),
            id="state",
        ),
        pytest.param(
            contact_xml("del_external_contact", PAIR),
            contact_xml("del_follow_user", PAIR),
            id="change-type",
        ),
        pytest.param(
            event_xml(
                "change_external_chat",
                "update",
                "<ChatId>c1</ChatId><MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList>",
            ),
            event_xml(
                "change_external_chat",
                "update",
                "<ChatId>c1</ChatId><MemChangeList><Item>Jack</Item></MemChangeList><Item>Rose</Item>",
            ),
            id="nesting",
        ),
    ],
)
def test_distinct_same_second_events_get_distinct_keys(first: bytes, second: bytes) -> None:
    # given two real events in the same second (both carry HEAD's CreateTime)
    one, other = parse_event(first), parse_event(second)
    assert one.create_time == other.create_time
    # then
    assert dedupe_key(one) != dedupe_key(other)


def test_dedupe_key_is_a_fixed_length_hex_digest() -> None:
    key = dedupe_key(parse_event(contact_xml("edit_external_contact", PAIR)))
    assert len(key) == 64
    assert int(key, 16) >= 0
