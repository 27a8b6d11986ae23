"""Every portal text has an English translation, and the English has no full-width punctuation (issue 17:
English pages showed （¥20.00）). Reads the templates and portal.py's N_() marks against the merged
catalogs the pages use."""

from __future__ import annotations

import re
from pathlib import Path

from sscard.web.pages import translations

SRC = Path(__file__).resolve().parents[2] / "src" / "sscard" / "web"
CALL = re.compile(r'''(?:_|N_)\(\s*"((?:[^"\\]|\\.)*)"''')
FULL_WIDTH = re.compile(r"[（）【】，。：；！？、“”]")


def portal_texts() -> set[str]:
    texts = set()
    for path in sorted((SRC / "templates" / "portal").glob("*.html")) + [SRC / "portal.py"]:
        texts |= {t for t in CALL.findall(path.read_text()) if re.search(r"[\u4e00-\u9fff]", t)}
    return texts


def test_every_portal_text_has_an_english_translation():
    english = translations("en")
    missing = sorted(t for t in portal_texts() if english.gettext(t) == t)
    assert missing == []


def test_english_portal_texts_use_no_full_width_punctuation():
    english = translations("en")
    translated = {t: english.gettext(t) for t in portal_texts() if english.gettext(t) != t}
    wrong = {t: text for t, text in translated.items() if FULL_WIDTH.search(text)}
    assert wrong == {}
