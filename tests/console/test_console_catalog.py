"""Every Chinese string of the window console has its English in console.po, and the .mo is compiled."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from sscard.web import console

ROOT = Path(console.__file__).resolve().parent
TEMPLATES = ROOT / "templates" / "console"
LOCALE = ROOT.parent / "locale" / "en" / "LC_MESSAGES"


def _strings() -> set[str]:
    found: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        found.update(re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"', text))
        found.update(re.findall(r"_\(\s*'((?:[^'\\]|\\.)*)'", text))
    for labels in (console.SCOPE_LABELS, console.POA_LABELS, console.TOPIC_LABELS):
        found.update(labels.values())
    return found


def test_every_console_string_has_an_english_translation_in_po_and_mo():
    with open(LOCALE / "console.po", "rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    with open(LOCALE / "console.mo", "rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    strings = _strings()
    assert len(strings) > 100
    missing = sorted(s for s in strings if not po.get(s))
    assert not missing, missing
    stale = sorted(s for s in strings if mo.get(s) != po[s])
    assert not stale, f"recompile console.mo: {stale[:5]}"
    assert all(not re.search(r"[\u4e00-\u9fff]", po[s]) for s in strings)
