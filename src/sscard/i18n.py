"""The one translation mechanism: gettext catalogs compiled by Babel. Every text is written in Chinese
(the message id); English comes from the catalogs in locale/en/LC_MESSAGES (one domain per area: common,
console, bank, portal, labels, documents), merged. Pages, PDFs and the hotlines all read them here.

Catalogs: edit the .po, then `.venv/bin/pybabel compile -D <domain> -d src/sscard/locale -l en` (commit
both the .po and the .mo); tests/test_catalogs.py checks each .mo matches its .po.
"""

from __future__ import annotations

from pathlib import Path

from babel.support import NullTranslations, Translations

from .core.labels import label_zh

LOCALE_DIR = Path(__file__).parent / "locale"
_translations: dict[str, NullTranslations] = {}


def translations(lang: str) -> NullTranslations:
    """Every catalog of `lang`, merged (zh: none, the texts are Chinese already)."""
    if lang not in _translations:
        merged: NullTranslations = NullTranslations()
        folder = LOCALE_DIR / lang / "LC_MESSAGES"
        if lang != "zh" and folder.is_dir():
            for mo in sorted(folder.glob("*.mo")):
                catalog = Translations.load(str(LOCALE_DIR), [lang], domain=mo.stem)
                if isinstance(merged, Translations):
                    merged.merge(catalog)
                else:
                    merged = catalog
        _translations[lang] = merged
    return _translations[lang]


def gettext(lang: str, message: str, **params) -> str:
    """`message` in `lang`, then formatted with `params` ("剩余{days}天", days=3)."""
    text = translations(lang).gettext(message)
    return text.format(**params) if params else text


def gettext_in(lang: str, context: str, message: str, **params) -> str:
    """`message` as one document or one kind of label words it (its catalog context), in `lang`."""
    text = message if lang == "zh" else translations(lang).pgettext(context, message)
    return text.format(**params) if params else text


def bilingual(message: str, context: str, **params) -> tuple[str, str]:
    """(Chinese, English) of one text, for the documents that print both."""
    return gettext_in("zh", context, message, **params), gettext_in("en", context, message, **params)


def label(kind: str, value: str, lang: str) -> str:
    """A value's label (core.labels) in `lang`; the catalog keeps it under the kind as context."""
    return gettext_in(lang, kind, label_zh(kind, value))


def label_pair(kind: str, value: str) -> tuple[str, str]:
    """(Chinese, English) of a value's label."""
    return label_zh(kind, value), label(kind, value, "en")
