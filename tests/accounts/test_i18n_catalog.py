"""Every console string has a Chinese translation, and no two catalogs disagree about one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import siyu.console
from siyu.console import templating

CONSOLE = Path(siyu.console.__file__).parent
ZH_DIR = CONSOLE / "locale" / "zh_CN" / "LC_MESSAGES"
# _("…") or _('…') in Jinja: the first argument, when it is a string literal.
TEMPLATE_MSGID = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def _template_msgids() -> set[tuple[str, str]]:
    found = set()
    for path in sorted((CONSOLE / "templates").rglob("*.html")):
        for match in TEMPLATE_MSGID.finditer(path.read_text(encoding="utf-8")):
            raw = match.group(1) if match.group(1) is not None else match.group(2)
            found.add((str(path.relative_to(CONSOLE)), re.sub(r"\\(.)", r"\1", raw)))
    return found


def _python_msgids() -> set[tuple[str, str]]:
    """String literals passed to `_` / `t` / `gettext` in the console's Python modules."""
    found = set()
    for path in sorted(CONSOLE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id in {"_", "t", "gettext"} and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add((str(path.relative_to(CONSOLE)), first.value))
    return found


def _declared_msgids() -> set[tuple[str, str]]:
    """msgids chosen in Python and translated in templates (`_(label)`): navigation, form errors."""
    from siyu.console.routes import users

    found = {("templating.py NAV", label) for _href, label, _type in templating.NAV}
    found |= {("routes/users.py FORM_ERRORS", text) for text in users.FORM_ERRORS.values()}
    found |= {("roles", role) for role in ("admin", "operator", "staff", "compliance")}
    return found


def _catalogs() -> dict[str, dict[str, str]]:
    catalogs = {}
    for po in sorted(ZH_DIR.glob("*.po")):
        with po.open("rb") as fh:
            messages = read_po(fh, locale="zh_Hans_CN")
        catalogs[po.name] = {m.id: str(m.string) for m in messages if m.id and isinstance(m.id, str)}
    return catalogs


USED = sorted(_template_msgids() | _python_msgids() | _declared_msgids())


def test_the_scan_finds_the_console_strings() -> None:
    # a guard against a regex that silently matches nothing
    assert {"Sign in to siyu", "Users", "Copy this token now; it will not be shown again."} <= {m for _, m in USED}


@pytest.mark.parametrize(("where", "msgid"), USED, ids=[f"{w}:{m[:40]}" for w, m in USED])
def test_every_console_string_has_a_chinese_translation(where: str, msgid: str) -> None:
    translations = [c[msgid] for c in _catalogs().values() if c.get(msgid)]
    assert translations, f"{where} uses {msgid!r}, which no locale/zh_CN/LC_MESSAGES/*.po translates"


def test_no_two_catalogs_translate_a_msgid_differently() -> None:
    seen: dict[str, dict[str, str]] = {}
    for name, catalog in _catalogs().items():
        for msgid, text in catalog.items():
            if text:
                seen.setdefault(msgid, {})[name] = text
    conflicts = {m: by_file for m, by_file in seen.items() if len(set(by_file.values())) > 1}
    assert not conflicts, f"translated differently in different .po files: {conflicts}"


def test_placeholders_survive_translation() -> None:
    # "Hello {name}" must keep {name} in Chinese, or formatting raises at render time
    placeholder = re.compile(r"\{(\w*)\}")
    broken = {
        (name, msgid): text
        for name, catalog in _catalogs().items()
        for msgid, text in catalog.items()
        if text and set(placeholder.findall(msgid)) != set(placeholder.findall(text))
    }
    assert not broken, broken
