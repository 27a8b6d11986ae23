"""The English catalogs are merged into one (sscard.i18n.translations): a Chinese text translated two ways
in two areas' catalogs shows one area's wording on the other's pages (the bank counter's "Close account"
became the portal's "Account closed"). New collisions fail here; the known ones wait for one i18n
mechanism per area (issue 15)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po

CATALOGS = Path(__file__).parent.parent / "src" / "sscard" / "locale" / "en" / "LC_MESSAGES"
# (the labels of values, core.labels, have their own catalog and contexts: they collide no more)
KNOWN = {"密码", "待领取", "临时挂失", "口头挂失", "书面挂失", "首次申领"}


def test_no_new_chinese_text_is_translated_two_ways_across_catalogs():
    seen: dict[str, tuple[str, str]] = {}
    twice = set()
    for po in sorted(CATALOGS.glob("*.po")):
        with po.open("rb") as f:
            for message in read_po(f):
                msgid = message.id if isinstance(message.id, str) else message.id[0]
                if message.context:  # a label (core.labels): its own context keeps it apart
                    msgid = f"{message.context}\x04{msgid}"
                text = message.string if isinstance(message.string, str) else message.string[0]
                if not msgid or not text:
                    continue
                if msgid in seen and seen[msgid][1] != text:
                    twice.add(msgid)
                seen.setdefault(msgid, (po.name, text))
    assert twice - KNOWN == set(), {m: seen[m] for m in twice - KNOWN}


def test_every_label_has_its_english_under_its_kind_and_the_mo_is_compiled():
    from babel.messages.mofile import read_mo

    from sscard import i18n
    from sscard.core.labels import LABELS

    with (CATALOGS / "labels.po").open("rb") as f:
        po = {(m.context, m.id): m.string for m in read_po(f) if m.id}
    with (CATALOGS / "labels.mo").open("rb") as f:
        mo = {(m.context.decode() if isinstance(m.context, bytes) else m.context, m.id): m.string
              for m in read_mo(f) if m.id}
    for kind, table in LABELS.items():
        for value, zh in table.items():
            assert po.get((kind, zh)), (kind, value)
            assert mo.get((kind, zh)) == po[(kind, zh)], f"recompile labels.mo: {kind} {value}"
            assert i18n.label_pair(kind, value) == (zh, po[(kind, zh)])
    assert i18n.label("ss_status", "no_such_state", "en") == "no_such_state"


def test_the_services_pairs_are_the_labels():
    """Replacement reasons, fee methods and insurance kinds have no wording of their own: core.labels + catalog."""
    from sscard import i18n
    from sscard.core import labels
    from sscard.services import insurance, replacement

    assert set(replacement.REASONS) == set(labels.REASON) - {"first"}
    assert set(replacement.METHODS) == set(labels.FEE_METHOD)
    assert tuple(insurance.TYPE_NAMES) == insurance.INSURANCE_TYPES == tuple(labels.INSURANCE_KIND)
    for kind, pairs in (("reason", replacement.REASONS), ("fee_method", replacement.METHODS),
                        ("insurance_kind", insurance.TYPE_NAMES)):
        for value, pair in pairs.items():
            assert pair == i18n.label_pair(kind, value) and pair[0] != pair[1], (kind, value)


def test_audit_operations_are_worded_in_one_table_for_staff_and_for_cardholders():
    from sscard import i18n
    from sscard.core import labels

    assert set(labels.OPERATION_STAFF) <= set(labels.OPERATION_CARDHOLDER)
    for old, new in labels.RENAMED_OPERATIONS.items():
        assert labels.OPERATION_CARDHOLDER[old] == labels.OPERATION_CARDHOLDER[new]
        assert labels.OPERATION_STAFF.get(old) == labels.OPERATION_STAFF.get(new)
    # the two audiences' words for one operation: counter terms for staff, the cardholder's view in the portal
    assert i18n.label_pair("operation_staff", "replacement.apply") == ("补换卡受理", "Replacement application")
    assert i18n.label_pair("operation_cardholder", "counter.collect") == ("领取社保卡", "Card collected")
    assert i18n.label("operation_cardholder", "no.such_operation", "en") == "no.such_operation"


def test_every_operation_that_may_name_a_person_is_worded_for_the_cardholders_access_log():
    """Session 21's browser probe found bank_counter.statement, bank_counter.customer, bank_counter.slip and
    attorney.visit_actions shown as codes in the portal's access log: every declared operation or read now
    has the cardholder's words (in both languages), is called by cardholders only (their own acts are not
    listed), or is declared never to name a person (labels.NOT_ABOUT_A_PERSON)."""
    import importlib
    import pkgutil

    import sscard.services
    from sscard import i18n
    from sscard.core import labels
    from sscard.core.roles import Role
    from sscard.services import access

    for module in pkgutil.iter_modules(sscard.services.__path__):
        importlib.import_module(f"sscard.services.{module.name}")
    assert len(access.DECLARATIONS) > 100
    unworded = sorted(name for name, decl in access.DECLARATIONS.items()
                      if name not in labels.OPERATION_CARDHOLDER and name not in labels.NOT_ABOUT_A_PERSON
                      and decl.roles != {Role.CARDHOLDER}
                      and not name.startswith("test."))  # (declared by tests of the frame itself)
    assert unworded == []
    assert labels.NOT_ABOUT_A_PERSON <= set(access.DECLARATIONS)  # no stale name
    for name in access.DECLARATIONS:
        if name in labels.OPERATION_CARDHOLDER:
            zh, en = i18n.label_pair("operation_cardholder", name)
            assert zh != name and en != name and en != zh, name


def test_refused_events_are_worded_per_desk():
    from sscard import i18n

    assert i18n.label_pair("window_event", "report_formal_loss") == ("正式挂失", "formal loss")
    assert i18n.label_pair("bank_event", "close") == ("销户", "closing the account")
    assert i18n.label_pair("window_event", "close") == ("close", "close")  # a callback request's, not the bank's
