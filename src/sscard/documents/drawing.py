"""What every PDF shares: the CJK font, the line breaker, a canvas that ends as bytes, and a cursor that
writes line after line down the page.

The font: a TrueType font reportlab can embed, the first found of the path in SSCARD_PDF_FONT
("path" or "path:subfont-index" for a collection), Debian's WenQuanYi Zen Hei (`apt-get install
fonts-wqy-zenhei`), WenQuanYi Micro Hei, Droid Sans Fallback, AR PL UMing; without one, reportlab's
built-in CID font STSong-Light (not embedded; every PDF reader with Asian font support shows it). Noto
CJK ships as CFF outlines, which reportlab cannot embed.
"""

from __future__ import annotations

import io
import os
import threading
import unicodedata
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph

FONT_SETTING = "SSCARD_PDF_FONT"
FONT_NAME = "SscardCJK"
CID_FALLBACK = "STSong-Light"
FONT_CANDIDATES: list[tuple[str, int]] = [
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
]
_font_lock = threading.Lock()
_font_name: str | None = None


def cjk_font() -> str:
    """Register (once) and name the font every document is set in."""
    global _font_name
    with _font_lock:
        if _font_name:
            return _font_name
        candidates = list(FONT_CANDIDATES)
        override = os.environ.get(FONT_SETTING)
        if override:
            path, _, index = override.partition(":")
            candidates.insert(0, (path, int(index or 0)))
        for path, index in candidates:
            if not Path(path).is_file():
                continue
            try:
                kwargs = {"subfontIndex": index} if path.lower().endswith(".ttc") else {}
                pdfmetrics.registerFont(TTFont(FONT_NAME, path, **kwargs))
            except Exception:  # noqa: BLE001  (CFF outlines, a broken file: try the next)
                continue
            _font_name = FONT_NAME
            return _font_name
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
        _font_name = CID_FALLBACK
        return _font_name


def forget_font() -> None:
    """Choose the font again at the next document (tests that hide the fonts)."""
    global _font_name
    with _font_lock:
        _font_name = None


# Chinese punctuation never starts a line: it may stand a little into the margin instead.
NO_LINE_START = "，。；：、）"


def wrap(value: str, font: str, size: float, room: float) -> list[str]:
    """Lines that fit `room` points: break at spaces in Latin text, anywhere between Chinese characters."""
    lines, current = [], ""
    for ch in value:
        if pdfmetrics.stringWidth(current + ch, font, size) <= room or ch in NO_LINE_START:
            current += ch
            continue
        cut = current.rfind(" ") if ch != " " and ord(ch) < 0x2E80 else -1
        if cut > 0:
            lines.append(current[:cut])
            current = current[cut + 1:] + ch
        else:
            lines.append(current)
            current = ch.lstrip()
    if current:
        lines.append(current)
    return lines


def fit(value: str, font: str, size: float, room: float) -> str:
    """A value on one line of `room` points: as it is when it fits, else cut with "…" (a hospital's bill line
    named at length ran over the next column; a count of characters cannot tell a CJK name's width)."""
    value = plain(value)
    if pdfmetrics.stringWidth(value, font, size) <= room:
        return value
    value = value[: int(room / (size * 0.2)) + 1]  # no glyph that shows is narrower: a long value costs no more
    while value and pdfmetrics.stringWidth(value + "…", font, size) > room:
        value = value[:-1]
    return value + "…"


def plain(value: str) -> str:
    """A value as it is to be read: line breaks and tabs become spaces, other control characters (a NUL, an
    escape sequence) and lone surrogates are dropped; everything else (an ideographic space, a joiner) stays."""
    return "".join(" " if ch in "\r\n\t" else ch for ch in str(value)
                   if ch in "\r\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))


def paragraph(value: str, style) -> Paragraph:
    """A wrapped paragraph of plain text, the only way a document makes one: reportlab's Paragraph reads its
    text as markup, so a value holding `<img src=...>` had it open a file or a URL into the PDF, `<font
    name=...>` or a lone `<` ended the document with an error (a merchant's or an outlet's name, a
    statement's line). The value is escaped first: it is shown as it was typed, never obeyed."""
    return Paragraph(escape(plain(value)), style)


class Page:
    """A canvas on an in-memory buffer, in the CJK font, and a cursor `y` that `text` and `pair` move down."""

    def __init__(self, pagesize: tuple[float, float], title: str, author: str = "sscard", **options) -> None:
        self.font = cjk_font()
        self.buf = io.BytesIO()
        self.c = canvas.Canvas(self.buf, pagesize=pagesize, **options)
        self.c.setTitle(title)
        self.c.setAuthor(author)
        self.width, self.height = pagesize
        self.y = self.height

    def text(self, value: str, size: float, x: float, gap: float, align: str = "left") -> None:
        """One line at the cursor (left from x, right-aligned at x, or centred on the page), then `gap` down."""
        self.c.setFont(self.font, size)
        if align == "center":
            self.c.drawCentredString(self.width / 2, self.y, value)
        elif align == "right":
            self.c.drawRightString(x, self.y, value)
        else:
            self.c.drawString(x, self.y, value)
        self.y -= gap

    def pair(self, label: str, value: str, size: float, left: float, right: float, gap: float) -> None:
        """A label at `left` and its value right-aligned at `right` on one line, then `gap` down."""
        self.c.setFont(self.font, size)
        self.c.drawString(left, self.y, label)
        self.c.drawRightString(right, self.y, value)
        self.y -= gap

    def finish(self) -> bytes:
        self.c.showPage()
        self.c.save()
        return self.buf.getvalue()
