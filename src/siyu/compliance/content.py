"""Content checks before a message is sent: sensitive words, links outside the allowlist, induced sharing.

`check_content` returns every finding with the matched text and where it is, so the composer can
highlight it and the planner can block the send showing why. Positions index the message text;
findings from attachments (a link card's URL, title or description) carry start = end = -1 and name
the attachment field in `detail`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from siyu.compliance.policy import Policy

FindingKind = Literal["sensitive_word", "link", "induced_sharing"]

# Words the advertising law forbids or spam reports single out; a corp's own list is added to these.
DEFAULT_SENSITIVE_WORDS: tuple[str, ...] = (
    "最好",
    "最佳",
    "最低价",
    "最高级",
    "第一",
    "国家级",
    "世界级",
    "顶级",
    "极品",
    "绝对",
    "万能",
    "100%有效",
    "百分百有效",
    "无效退款",
    "根治",
    "特效药",
    "稳赚",
    "稳赚不赔",
    "保本",
    "零风险",
    "躺赚",
    "日赚",
    "兼职刷单",
    "刷单",
    "套现",
    "网贷",
    "加微信",
    "加我微信",
    "私聊领取",
)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    matched: str
    start: int  # index into the text; -1 for a finding in an attachment
    end: int  # exclusive
    detail: str


# ---------------------------------------------------------------- Aho-Corasick


class WordAutomaton:
    """Aho-Corasick over a fixed word list: one pass over the text finds every occurrence of every word."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = tuple(words)
        self._goto: list[dict[str, int]] = [{}]
        self._fail: list[int] = [0]
        self._out: list[list[int]] = [[]]  # word indices ending at each state (own and via fail links)
        for index, word in enumerate(self.words):
            self._add(word, index)
        self._link()

    def _add(self, word: str, index: int) -> None:
        state = 0
        for char in word:
            nxt = self._goto[state].get(char)
            if nxt is None:
                nxt = len(self._goto)
                self._goto[state][char] = nxt
                self._goto.append({})
                self._fail.append(0)
                self._out.append([])
            state = nxt
        self._out[state].append(index)

    def _link(self) -> None:
        queue = deque(self._goto[0].values())
        while queue:
            state = queue.popleft()
            for char, nxt in self._goto[state].items():
                queue.append(nxt)
                fallback = self._fail[state]
                while fallback and char not in self._goto[fallback]:
                    fallback = self._fail[fallback]
                target = self._goto[fallback].get(char, 0)
                self._fail[nxt] = target if target != nxt else 0
                self._out[nxt] = self._out[nxt] + self._out[self._fail[nxt]]

    def iter_matches(self, text: str) -> Iterator[tuple[int, int, int]]:
        """(start, end, word index) for every occurrence, overlapping ones included."""
        state = 0
        for position, char in enumerate(text):
            while state and char not in self._goto[state]:
                state = self._fail[state]
            state = self._goto[state].get(char, 0)
            for index in self._out[state]:
                yield position + 1 - len(self.words[index]), position + 1, index


def _fold(text: str) -> str:
    """Lower-case without changing length, so positions in the folded text are positions in the original."""
    return "".join(c if len(low := c.lower()) != 1 else low for c in text)


@lru_cache(maxsize=64)
def automaton_for(words: tuple[str, ...]) -> WordAutomaton:
    return WordAutomaton([_fold(w) for w in words])


def _word_list(policy: Policy) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for word in (*DEFAULT_SENSITIVE_WORDS, *policy.sensitive_words):
        word = word.strip()
        if word and _fold(word) not in seen:
            seen[_fold(word)] = None
    return tuple(seen)


def find_sensitive_words(policy: Policy, text: str) -> list[Finding]:
    """Leftmost-longest, non-overlapping occurrences ("稳赚不赔" is one finding, not "稳赚" as well)."""
    automaton = automaton_for(_word_list(policy))
    matches = sorted(automaton.iter_matches(_fold(text)), key=lambda m: (m[0], -(m[1] - m[0])))
    findings: list[Finding] = []
    covered_to = 0
    for start, end, _ in matches:
        if start < covered_to:
            continue
        covered_to = end
        findings.append(Finding("sensitive_word", text[start:end], start, end, "sensitive word"))
    return findings


# ---------------------------------------------------------------- links

_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'，。；！？、）】》“”]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


def _normalise_suffix(entry: str) -> str:
    entry = entry.strip().lower()
    if "//" in entry:
        entry = urlsplit(entry).hostname or ""
    return entry.removeprefix("*.").strip(".")


def host_of(url: str) -> str:
    if not re.match(r"https?://", url, re.IGNORECASE):
        url = "http://" + url
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def host_allowed(host: str, allowlist: Sequence[str]) -> bool:
    """Host-suffix match on label boundaries: "example.com" allows "m.example.com", not "badexample.com"."""
    for entry in allowlist:
        suffix = _normalise_suffix(entry)
        if suffix and (host == suffix or host.endswith("." + suffix)):
            return True
    return False


def find_links(policy: Policy, text: str) -> list[Finding]:
    findings: list[Finding] = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        host = host_of(url)
        if host_allowed(host, policy.link_allowlist):
            continue
        start = match.start()
        findings.append(Finding("link", url, start, start + len(url), f"link host not in allowlist: {host or '?'}"))
    return findings


# ---------------------------------------------------------------- induced sharing

_GAP = r"[^。！？!?\n]{0,12}?"  # bounded, inside one sentence
_INDUCED_SHARING: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        ("转发…领取/得", rf"转发{_GAP}(?:领取|(?<![心觉记值懂晓使])得|领(?![导域先袖])|送(?![货达])|返现|抽奖|免费)"),
        ("分享…得/领/送", rf"分享{_GAP}(?:领取|(?<![心觉记值懂晓使])得|领(?![导域先袖])|送(?![货达])|返现|抽奖|免费)"),
        ("集赞", r"集(?:满)?\d*个?赞"),
        ("点赞满…", rf"点赞(?:满|达到|超过){_GAP}(?:领|得|送|返|免费)"),
        ("朋友圈…截图", rf"朋友圈{_GAP}截图|截图{_GAP}朋友圈"),
        (
            "邀请好友…领/得/送",
            rf"邀请{_GAP}好友{_GAP}(?:领取|(?<![心觉记值懂晓使])得|领(?![导域先袖])|送(?![货达])|返现|免费)",
        ),
    )
)


def find_induced_sharing(text: str) -> list[Finding]:
    findings: list[Finding] = []
    for label, pattern in _INDUCED_SHARING:
        for match in pattern.finditer(text):
            findings.append(
                Finding("induced_sharing", match.group(0), match.start(), match.end(), f"induced sharing: {label}")
            )
    return findings


# ---------------------------------------------------------------- attachments


def _attachment_texts(attachments: Sequence[Mapping[str, object]]) -> Iterator[tuple[str, str, str]]:
    """(field path, kind of field, value) for the text-bearing fields of link and mini-program attachments."""
    for index, attachment in enumerate(attachments):
        msgtype = str(attachment.get("msgtype", ""))
        body = attachment.get(msgtype)
        if not isinstance(body, Mapping):
            continue
        for key in ("url", "title", "desc"):
            value = body.get(key)
            if isinstance(value, str) and value:
                yield f"attachments[{index}].{msgtype}.{key}", key, value


def _check_attachments(policy: Policy, attachments: Sequence[Mapping[str, object]]) -> list[Finding]:
    findings: list[Finding] = []
    for path, key, value in _attachment_texts(attachments):
        if key == "url":
            host = host_of(value)
            if not host_allowed(host, policy.link_allowlist):
                findings.append(Finding("link", value, -1, -1, f"{path}: link host not in allowlist: {host or '?'}"))
            continue
        for found in (*find_sensitive_words(policy, value), *find_induced_sharing(value)):
            findings.append(Finding(found.kind, found.matched, -1, -1, f"{path}: {found.detail}"))
    return findings


def check_content(policy: Policy, text: str, attachments: Sequence[Mapping[str, object]] = ()) -> list[Finding]:
    """Every finding in the text (ordered by position) and then in the attachments; empty means clean."""
    in_text = [*find_sensitive_words(policy, text), *find_links(policy, text), *find_induced_sharing(text)]
    in_text.sort(key=lambda f: (f.start, f.end, f.kind))
    return [*in_text, *_check_attachments(policy, attachments)]
