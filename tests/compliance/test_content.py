"""Content checks: sensitive words (Aho-Corasick), links outside the allowlist, induced sharing."""

from __future__ import annotations

import pytest

from siyu.compliance.content import Finding, WordAutomaton, check_content
from siyu.compliance.policy import Policy

POLICY = Policy(sensitive_words=("秒杀", "VIP专享"), link_allowlist=("example.com", "*.siyu.dev"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("本店最好的产品，稳赚不赔！100%有效", [("最好", 2, 4), ("稳赚不赔", 8, 12), ("100%有效", 13, 19)]),
        ("今天秒杀，vip专享价", [("秒杀", 2, 4), ("vip专享", 5, 10)]),  # corp words, case-folded
        ("国家级第一品牌", [("国家级", 0, 3), ("第一", 3, 5)]),
        ("欢迎光临，祝您周末愉快", []),
    ],
)
def test_sensitive_words_are_found_with_positions(text: str, expected: list[tuple[str, int, int]]) -> None:
    # when
    findings = [f for f in check_content(POLICY, text) if f.kind == "sensitive_word"]

    # then
    assert [(f.matched, f.start, f.end) for f in findings] == expected
    assert all(text[f.start : f.end] == f.matched for f in findings)


def test_automaton_reports_overlapping_occurrences() -> None:
    automaton = WordAutomaton(["he", "she", "his", "hers"])

    matches = sorted((s, e, automaton.words[i]) for s, e, i in automaton.iter_matches("ushers"))

    assert matches == [(1, 4, "she"), (2, 4, "he"), (2, 6, "hers")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("详情 https://m.example.com/a 和 https://evil.cn/x?y=1。", [("https://evil.cn/x?y=1", 29, 50)]),
        ("看 www.badexample.com/p", [("www.badexample.com/p", 2, 22)]),  # a suffix must end on a label boundary
        ("https://a.siyu.dev/q 与 http://example.com", []),
        ("打开 HTTP://Evil.CN/Path).", [("HTTP://Evil.CN/Path", 3, 22)]),
    ],
)
def test_links_outside_the_allowlist(text: str, expected: list[tuple[str, int, int]]) -> None:
    findings = [f for f in check_content(POLICY, text) if f.kind == "link"]

    assert [(f.matched, f.start, f.end) for f in findings] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("转发到朋友圈即可领取红包", [("转发到朋友圈即可领取", 0, 10)]),
        ("把这条分享给3个好友得优惠券", [("分享给3个好友得", 3, 11)]),
        ("集满30个赞送礼品", [("集满30个赞", 0, 6)]),
        ("发朋友圈后截图给客服", [("朋友圈后截图", 1, 7)]),
        ("邀请2位好友进群免费领课", [("邀请2位好友进群免费", 0, 10)]),
        ("分享给你，觉得不错", []),  # 觉得 is not a reward
        ("转发给领导看看", []),
        ("转发这条消息。明天再来领取", []),  # the gap stays inside one sentence
        ("转发这一条很长很长很长很长很长的消息然后领取", []),  # gap over 12 characters
    ],
)
def test_induced_sharing(text: str, expected: list[tuple[str, int, int]]) -> None:
    findings = [f for f in check_content(POLICY, text) if f.kind == "induced_sharing"]

    assert [(f.matched, f.start, f.end) for f in findings] == expected


def test_findings_are_ordered_by_position_and_attachments_follow() -> None:
    # given
    text = "转发领取 https://evil.cn 最好"
    attachments = [
        {"msgtype": "image", "image": {"media_id": "m1"}},
        {"msgtype": "link", "link": {"title": "稳赚", "url": "https://bad.io/x", "desc": "集赞有礼"}},
        {"msgtype": "link", "link": {"title": "ok", "url": "https://example.com/p"}},
    ]

    # when
    findings = check_content(POLICY, text, attachments)

    # then
    assert findings == [
        Finding("induced_sharing", "转发领取", 0, 4, "induced sharing: 转发…领取/得"),
        Finding("link", "https://evil.cn", 5, 20, "link host not in allowlist: evil.cn"),
        Finding("sensitive_word", "最好", 21, 23, "sensitive word"),
        Finding("link", "https://bad.io/x", -1, -1, "attachments[1].link.url: link host not in allowlist: bad.io"),
        Finding("sensitive_word", "稳赚", -1, -1, "attachments[1].link.title: sensitive word"),
        Finding("induced_sharing", "集赞", -1, -1, "attachments[1].link.desc: induced sharing: 集赞"),
    ]


def test_clean_text_has_no_findings() -> None:
    assert check_content(Policy(), "您好，本周新品已到店，欢迎来看看。") == []
