"""The IVR engine and its menu files: menus are data and must hold together; the webhook's edges."""

from __future__ import annotations

import logging

import pytest
from twilio.request_validator import RequestValidator

from sscard.hotline.engine import MenuError, load_menu, parse_menu
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id

MINIMAL = """
[line]
start = "main"
main = "main"
identify = "main"
[text]
no_input = { zh = "无", en = "none" }
no_input_goodbye = { zh = "再见", en = "bye" }
invalid = { zh = "错", en = "wrong" }
too_many_goodbye = { zh = "多", en = "many" }
agent_queued = { zh = "人工", en = "agent" }
agent_already_queued = { zh = "已在排队", en = "already queued" }
agent_no_number = { zh = "无号码", en = "no number" }
[nodes.main]
type = "menu"
say = { zh = "按1", en = "press 1" }
options = { "1" = "%s" }
"""


def test_packaged_menus_load_and_every_route_exists():
    for name in ("12333", "bank"):
        menu = load_menu(name)
        assert menu.nodes[menu.start].type == "menu"
        assert menu.back_key == "*" and menu.agent_key == "0"
        for node in menu.nodes.values():
            if node.secret:
                assert node.type == "input"


def test_a_menu_naming_an_unknown_node_is_refused():
    assert parse_menu("ok", MINIMAL % "main").nodes["main"].options["1"].go == "main"
    with pytest.raises(MenuError, match="unknown node"):
        parse_menu("broken", MINIMAL % "nowhere")


def test_a_prompt_needs_both_languages():
    with pytest.raises(MenuError, match="say.zh and say.en"):
        parse_menu("broken", (MINIMAL % "main").replace('say = { zh = "按1", en = "press 1" }', 'say = { zh = "按1" }'))


def test_nothing_typed_is_logged(client, holder, caplog):
    caplog.set_level(logging.DEBUG)
    phone = Phone(client).press("1").press("1")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert "身份验证成功" in phone.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert QUERY_PASSWORD not in logged and holder.citizen_id not in logged


def test_an_idle_call_has_ended(client, holder, clock):
    phone = Phone(client).press("1")
    clock.advance(minutes=11)
    phone.press("1")
    assert phone.ended and "通话结束" in phone.text


def _server(settings, clock, **changes):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from sscard.composition import create_app
    from sscard.services.app import build_app

    app = build_app(replace(settings, **changes), clock=clock, pool_size=2)
    return app, TestClient(create_app(app))


def test_twilio_signature_is_checked_when_a_token_is_set(settings, clock, app):
    _app, client = _server(settings, clock, twilio_auth_token="test-token", hotline_unsigned=False)
    try:
        url = "http://testserver/api/v1/hotline/12333/voice"
        form = {"CallSid": "CAsigned", "From": "+8613800138000"}
        unsigned = client.post(url, data=form)
        assert unsigned.status_code == 403
        forged = client.post(url, data=form, headers={"X-Twilio-Signature": RequestValidator("other").compute_signature(url, form)})
        assert forged.status_code == 403
        signature = RequestValidator("test-token").compute_signature(url, form)
        signed = client.post(url, data=form, headers={"X-Twilio-Signature": signature})
        assert signed.status_code == 200 and "<Gather" in signed.text
    finally:
        _app.close()


@pytest.mark.parametrize("path", ["/api/v1/hotline/12333/voice?turn=1", "/api/v1/hotline/bank:GSB/voice",
                                  "/api/v1/hotline/12333/status"])
def test_behind_a_tls_proxy_the_signature_over_the_public_url_is_accepted_only_with_the_public_url_set(
        settings, clock, city, path):
    """Twilio signs https://public-host/...; behind a TLS-terminating proxy the server receives
    http://internal-host/... (here the test client's http://testserver): the signature is checked against
    SSCARD_HOTLINE_PUBLIC_URL's base with the request's own path and query."""
    public = "https://hotline.sscard.example.cn"
    form = {"CallSid": "CAproxied", "From": "+8613800138000", "CallStatus": "completed"}
    signature = {"X-Twilio-Signature": RequestValidator("test-token").compute_signature(public + path, form)}
    for public_url, accepted in ((None, False), ("https://other.example.cn", False),
                                 ("http://hotline.sscard.example.cn", False), (public, True), (public + "/", True)):
        base = public_url.rstrip("/") if public_url else None
        served, client = _server(settings, clock, twilio_auth_token="test-token", hotline_unsigned=False,
                                 hotline_public_url=base)
        try:
            answer = client.post(path, data=form, headers=signature)
            assert (answer.status_code in (200, 204)) is accepted, (public_url, answer.status_code)
            if not accepted:
                assert answer.status_code == 403 and answer.json()["code"] == "forbidden"
            # the URL as received is no longer what a signature may cover once the public base is set
            internal = {"X-Twilio-Signature": RequestValidator("test-token").compute_signature(
                "http://testserver" + path, form)}
            assert (client.post(path, data=form, headers=internal).status_code in (200, 204)) is (base is None)
            # a retried request with the same signature is the same request; another body under it is not
            if accepted:
                assert client.post(path, data=form, headers=signature).status_code in (200, 204)
                forged = client.post(path, data={**form, "From": "+8613900000000"}, headers=signature)
                assert forged.status_code == 403
        finally:
            served.close()


def test_the_public_hotline_url_is_read_from_the_environment_and_a_bad_one_stops_start_up(monkeypatch, tmp_path):
    from sscard.config import Settings

    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("SSCARD_HOTLINE_PUBLIC_URL", raising=False)
    assert Settings.from_env().hotline_public_url is None
    monkeypatch.setenv("SSCARD_HOTLINE_PUBLIC_URL", "https://hotline.sscard.example.cn/ivr/")
    assert Settings.from_env().hotline_public_url == "https://hotline.sscard.example.cn/ivr"
    for bad in ("hotline.sscard.example.cn", "ftp://x.example.cn", "https://x.example.cn/?a=1", "https://"):
        monkeypatch.setenv("SSCARD_HOTLINE_PUBLIC_URL", bad)
        with pytest.raises(ValueError, match="SSCARD_HOTLINE_PUBLIC_URL"):
            Settings.from_env()


@pytest.mark.parametrize("path", ["/api/v1/hotline/12333/voice", "/api/v1/hotline/bank:GSB/voice",
                                  "/api/v1/hotline/12333/status"])
def test_without_a_token_the_webhooks_are_closed_unless_the_demo_opens_them(settings, clock, city, path):
    """A deployment that forgot SSCARD_TWILIO_AUTH_TOKEN does not leave an IVR that reports losses open to
    anyone who can reach the API: refused, and nothing of a call is kept."""
    from sqlalchemy import func, select

    from sscard.models.hotline import HotlineCall

    closed, client = _server(settings, clock, hotline_unsigned=False)
    try:
        form = {"CallSid": "CAclosed", "From": "+8613800138000", "Digits": "1", "CallStatus": "completed"}
        answer = client.post(path, data=form)
        assert answer.status_code == 403 and answer.json()["code"] == "forbidden"
        with closed.db.session() as s:
            assert s.scalar(select(func.count()).select_from(HotlineCall)) == 0
    finally:
        closed.close()
    demo, client = _server(settings, clock, hotline_unsigned=True)
    try:
        assert client.post(path, data=form).status_code in (200, 204)
    finally:
        demo.close()


def test_the_hotline_settings_are_read_from_the_environment_and_a_typo_stops_start_up(monkeypatch, tmp_path):
    from sscard.config import Settings

    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("SSCARD_TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("SSCARD_HOTLINE_UNSIGNED", raising=False)
    plain = Settings.from_env()
    assert plain.twilio_auth_token is None and plain.hotline_unsigned is False
    monkeypatch.setenv("SSCARD_TWILIO_AUTH_TOKEN", "tok-123")
    monkeypatch.setenv("SSCARD_HOTLINE_UNSIGNED", "true")
    both = Settings.from_env()
    assert both.twilio_auth_token == "tok-123" and both.hotline_unsigned is True
    assert "tok-123" not in repr(both) and both.secret_key.hex() not in repr(both)
    monkeypatch.setenv("SSCARD_HOTLINE_UNSIGNED", "ture")
    with pytest.raises(ValueError, match="SSCARD_HOTLINE_UNSIGNED"):
        Settings.from_env()


def test_a_call_sid_used_on_another_line_is_answered_politely(client, holder):
    phone = Phone(client, "12333")
    response = client.post("/api/v1/hotline/bank:GSB/voice", data={"CallSid": phone.sid, "Digits": "1"})
    assert response.status_code == 200
    assert "<Hangup" in response.text and "对不起" in response.text and "Sorry" in response.text


def test_idle_calls_are_swept_and_forget_what_they_held(client, holder, app, clock):
    from sscard.core.roles import CLI_OPERATOR
    from sscard.services import hotline

    phone = Phone(client).press("1").press("2").press(keys_for_citizen_id(holder.citizen_id))
    fresh = Phone(client)
    clock.advance(minutes=11)
    Phone(client)  # a call that just started is not idle
    assert hotline.load_call(app, phone.sid)["slots"]["login"] == holder.citizen_id
    assert hotline.sweep_idle_calls(app, CLI_OPERATOR)["ended"] == 2
    assert hotline.load_call(app, phone.sid)["status"] == "ended"
    assert hotline.load_call(app, phone.sid)["slots"] == {}
    assert hotline.load_call(app, fresh.sid)["status"] == "ended"


@pytest.mark.parametrize("idle_minutes", [-1, 0])
def test_the_idle_sweep_refuses_fewer_than_one_minute_and_ends_no_call(client, app, clock, idle_minutes):
    """Session 29: -1 and 0 were taken as 1 and ended calls a minute old."""
    from sscard.core.errors import SscardError
    from sscard.core.roles import CLI_OPERATOR
    from sscard.services import hotline

    phone = Phone(client)
    clock.advance(minutes=2)
    with pytest.raises(SscardError) as refused:
        hotline.sweep_idle_calls(app, CLI_OPERATOR, idle_minutes)
    assert refused.value.code == "invalid_request"
    assert hotline.load_call(app, phone.sid)["status"] == "active"


@pytest.mark.parametrize("idle_minutes", ["-1", "0"])
def test_the_idle_sweep_command_refuses_fewer_than_one_minute(idle_minutes):
    import typer
    from typer.testing import CliRunner

    from sscard.cli import phone as phone_cli

    cli_app = typer.Typer()
    phone_cli.register(cli_app)
    result = CliRunner().invoke(cli_app, ["hotline-sweep", "--idle-minutes", idle_minutes], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "--idle-minutes" in result.output and "1" in result.output, result.output


def test_an_option_names_a_declared_operation_and_a_text_to_offer_it_by():
    ok = (MINIMAL % "main").replace('options = { "1" = "main" }', 'options = { "1" = { go = "main", operation = "ss_loss.cancel", say = "invalid" } }').replace('say = { zh = "按1", en = "press 1" }', 'say = { zh = "{option_1}", en = "{option_1}" }')
    assert parse_menu("ok", ok).nodes["main"].options["1"].operation == "ss_loss.cancel"
    with pytest.raises(MenuError, match="unknown operation"):
        parse_menu("broken", ok.replace("ss_loss.cancel", "ss_loss.nowhere"))
    with pytest.raises(MenuError, match="no text"):
        parse_menu("broken", ok.replace(', say = "invalid"', ""))


def test_a_conditional_option_needs_a_known_condition_and_its_place_in_the_prompt():
    ok = (MINIMAL % "main").replace('options = { "1" = "main" }', 'options = { "1" = { go = "main", when = "oral_loss_in_force", say = "invalid" } }').replace('say = { zh = "按1", en = "press 1" }', 'say = { zh = "{option_1}", en = "{option_1}" }')
    assert parse_menu("ok", ok).nodes["main"].options["1"].when == "oral_loss_in_force"
    with pytest.raises(MenuError, match="unknown condition"):
        parse_menu("broken", ok.replace("oral_loss_in_force", "nowhere"))
    with pytest.raises(MenuError, match="must say option 1"):
        parse_menu("broken", ok.replace('en = "{option_1}"', 'en = "press 1"'))
