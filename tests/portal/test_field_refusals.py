"""A refusal about a field names it, by construction: the channels' refusal words keep their code
(pages.Refusal) and the one refusal macro (_ui.html) names the field (pages.ERROR_FIELDS) and the form
that was sent, which sscard.js ties together (aria-invalid, aria-describedby, focus)."""

from __future__ import annotations

from types import SimpleNamespace

from sscard.core.errors import MESSAGES, SscardError
from sscard.web.pages import ERROR_FIELDS, Refusal, error_fields, gettext_context, templates


def _refusal(error, **kw) -> str:
    macro = templates.env.get_template("_ui.html").make_module(
        {"request": SimpleNamespace(url=SimpleNamespace(path="/portal/password/query")), **gettext_context("zh")})
    return str(macro.refusal(error, **kw)).strip()


def test_a_weak_password_refusal_names_the_new_password_field_and_the_form_that_was_sent():
    out = _refusal(Refusal(SscardError("weak_password"), "zh"), id="q-error", tag="p")
    assert out.startswith('<p class="msg error" role="alert" id="q-error"')
    assert 'data-error-for="new pin"' in out and 'data-error-form="/portal/password/query"' in out
    assert 'data-code="weak_password"' in out and "old" not in out.split(">")[0]


def test_a_refusal_about_no_field_names_none_and_no_refusal_renders_nothing():
    out = _refusal(Refusal(SscardError("service_busy"), "en"))
    assert 'role="alert"' in out and "data-error-for" not in out
    assert _refusal(None).strip() == "" and _refusal("").strip() == ""


def test_the_refusal_words_keep_their_code_and_every_named_code_exists():
    words = Refusal(SscardError("invalid_citizen_id"), "en")
    assert words == SscardError("invalid_citizen_id").message("en") and words.code == "invalid_citizen_id"
    assert error_fields(words) == "citizen_id agent_citizen_id query" and error_fields("wrong_pin") == "pin"
    assert error_fields("plain text") == "" and error_fields(None) == ""
    assert set(ERROR_FIELDS) <= set(MESSAGES)
    assert "wrong_password" in ERROR_FIELDS and "password" not in ERROR_FIELDS["wrong_password"]  # a login says no field
