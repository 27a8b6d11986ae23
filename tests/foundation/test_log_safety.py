"""Issue 13 findings 3 and 4 (and issue 16's JSON logs): the real server's log, with uvicorn's own
handlers, holds no PIN, password, citizen ID, card number or PAN, no traceback, no `Logging error`, no
over-long line, and still an access line for every request."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sscard.core.identifiers import mask_text
from sscard.logs import MAX_JSON, MAX_LINE, JsonFormatter, MaskingFilter, MaskingFormatter, mask_secrets
from tests.conftest import TEST_KEY
from tests.ledger.helpers import activated, terminal_token

PIN_ACTIVATE, PIN_ACTIVE, PIN_NEW, SS_PASSWORD = "460245", "731596", "285047", "918273"
BIG = "Q" * 1_000_000  # a 1 MB field
NAME_URL = "%E6%9D%8E%E5%9B%9B"  # 李四 in a query string


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoggedServer:
    """The real server in a subprocess, its stdout (uvicorn's access log) and stderr captured in files."""

    def __init__(self, db_url: str, workdir: Path, log_format: str, launcher: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = workdir / "stdout.log", workdir / "stderr.log"
        env = {**os.environ, "SSCARD_DATABASE_URL": db_url, "SSCARD_SECRET_KEY": TEST_KEY.hex(),
               "SSCARD_VAR_DIR": str(workdir), "SSCARD_CONFIG": "",
               "SSCARD_LOG_FORMAT": log_format}
        if launcher == "uvicorn":  # uvicorn's own logging set-up, as `uvicorn sscard.asgi:application`
            cmd = [sys.executable, "-m", "uvicorn", "sscard.asgi:application", "--port", str(self.port)]
        else:  # `sscard serve`: its log configuration
            cmd = [str(Path(sys.executable).parent / "sscard"), "serve", "--port", str(self.port)]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=err)

    def wait_ready(self) -> LoggedServer:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server died: " + self.err.read_text()[-2000:])
            try:
                httpx.get(self.url + "/static/htmx.min.js", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> str:
        """Stop the server and answer its whole log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


@pytest.fixture(params=[("plain", "uvicorn"), ("json", "sscard serve")], ids=["plain", "json"])
def served(request, city, app, db_url, tmp_path):
    log_format, launcher = request.param
    server = LoggedServer(db_url, tmp_path, log_format, launcher).wait_ready()
    yield server, log_format
    server.stop()


def _malformed_requests(city) -> tuple[list[tuple[str, str, dict]], list[str]]:
    """(method, path, httpx keyword arguments) of malformed requests carrying secrets, and the secrets."""
    fresh = city.issued_card(name="李四")  # (its name, URL-encoded, is NAME_URL)
    active = activated(city, name="王五", pin=PIN_ACTIVE, opening_fen=100_000)
    teller = {"Authorization": f"Bearer {city.token('teller')}", "Idempotency-Key": "k-1"}
    clerk = {"Authorization": f"Bearer {city.token('clerk')}", "Idempotency-Key": "k-2"}
    atm = {"Authorization": f"Bearer {terminal_token(city, 'ATM-GSB-1')}", "Idempotency-Key": "k-3"}
    secrets = [PIN_ACTIVATE, PIN_ACTIVE, PIN_NEW, SS_PASSWORD, fresh.citizen_id, fresh.pan, fresh.card_number,
               active.citizen_id, active.pan, active.card_number, "Q" * 64, NAME_URL, "李四"]
    requests = [
        # finding 3's request: activation without pin_again
        ("POST", f"/api/v1/bank-accounts/{fresh.pan}/activate",
         {"headers": teller, "json": {"presented_citizen_id": fresh.citizen_id, "pin": PIN_ACTIVATE}}),
        # a withdrawal with a bad amount, at an outlet and at an ATM (the terminals' lane)
        ("POST", f"/api/v1/bank-accounts/{active.pan}/withdrawal",
         {"headers": teller, "json": {"amount_fen": "lots", "pin": PIN_ACTIVE}}),
        ("POST", "/api/v1/terminal/withdrawal",
         {"headers": atm, "json": {"pan": active.pan, "amount_fen": 1.5, "pin": PIN_ACTIVE}}),
        # a PIN change with a missing field
        ("POST", f"/api/v1/bank-accounts/{active.pan}/pin/change",
         {"headers": teller, "json": {"old": PIN_ACTIVE, "new": PIN_NEW}}),
        # an SS-password verify with extra fields
        ("POST", f"/api/v1/cards/{active.card_number}/ss-password/verify",
         {"headers": clerk, "json": {"password": SS_PASSWORD, "citizen_id": active.citizen_id,
                                     "card_number": active.card_number, "pan": active.pan}}),
        # a 1 MB field (with a PIN beside it), and a 1 MB PIN
        ("POST", f"/api/v1/bank-accounts/{fresh.pan}/activate",
         {"headers": teller, "json": {"presented_citizen_id": fresh.citizen_id, "pin": PIN_ACTIVATE,
                                      "pin_again": PIN_ACTIVATE, "note": BIG}}),
        ("POST", f"/api/v1/bank-accounts/{active.pan}/withdrawal",
         {"headers": teller, "json": {"amount_fen": 100, "pin": BIG}}),
        # a body that is not JSON
        ("POST", f"/api/v1/bank-accounts/{fresh.pan}/activate",
         {"headers": {**teller, "Content-Type": "application/json"},
          "content": f'{{"presented_citizen_id": "{fresh.citizen_id}", "pin": {PIN_ACTIVATE}'}),
        ("POST", f"/api/v1/bank-accounts/{active.pan}/pin/change",
         {"headers": {**teller, "Content-Type": "application/x-www-form-urlencoded"},
          "content": f"old={PIN_ACTIVE}&new={PIN_NEW}&new_again={PIN_NEW}"}),
        # URLs holding a PAN, a card number, a citizen ID (path and query string)
        ("GET", f"/api/v1/bank-accounts/{active.pan}/statement", {"headers": teller}),
        ("GET", f"/api/v1/cards/{active.card_number}", {"headers": clerk}),
        ("GET", f"/api/v1/persons?citizen_id={active.citizen_id}", {"headers": clerk}),
        ("GET", f"/api/v1/bank-accounts/{active.pan}/statement?pin={PIN_ACTIVE}", {"headers": teller}),
        ("GET", f"/api/v1/counter/persons?name={NAME_URL}&birth_date=1980-05-17", {"headers": clerk}),
        # well-formed but refused (wrong PIN), through the terminals' lane and the group-commit writer
        ("POST", "/api/v1/terminal/balance", {"headers": atm, "json": {"pan": active.pan, "pin": PIN_NEW}}),
    ]
    return requests, secrets


def test_finding3_and_finding4_the_servers_log_holds_no_secret_no_traceback_and_every_access_line(served, city):
    server, log_format = served
    requests, secrets = _malformed_requests(city)
    answers = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for method, path, kwargs in requests:
            r = client.request(method, path, **kwargs)
            assert r.status_code < 500, (path, r.status_code, r.text[:300])
            assert r.headers.get("x-request-id"), path
            answers.append((method, path, r.status_code, r.headers["x-request-id"]))
        sent = client.get("/api/v1/cards/A0000000X", headers={"X-Request-ID": "probe-42"})
        assert sent.headers["x-request-id"] == "probe-42"
    log = server.stop()

    for secret in secrets:
        assert secret not in log, f"{secret[:20]}... reached the log"
    assert "Traceback" not in log
    assert "Logging error" not in log
    assert max(len(line) for line in log.splitlines()) <= max(MAX_JSON, MAX_LINE) + 64

    if log_format == "json":
        records = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is one object
        access = [r for r in records if r["logger"] == "uvicorn.access"]
        by_id = {r["request_id"]: r for r in access}
        for method, path, status, request_id in answers:
            line = by_id[request_id]
            assert (line["method"], line["status"]) == (method, status)
            assert line["path"].startswith(mask_text(path.split("?")[0]))
            if method == "GET":  # the caller is known once resolved (malformed bodies are refused before)
                assert line["actor_kind"] == "staff"
        assert by_id["probe-42"]["status"] == sent.status_code
        statement = next(by_id[rid] for m, p, s, rid in answers if p.endswith("/statement"))
        assert statement["operation"] == "bank.statement" and statement["actor_role"] == "teller"
        balance = next(by_id[rid] for m, p, s, rid in answers if p.endswith("/terminal/balance"))
        assert (balance["operation"], balance["actor_kind"], balance["status"]) == ("bank.balance", "terminal", 401)
    else:
        lines = log.splitlines()
        for method, path, status, _ in answers:
            request_line = f'"{method} {mask_text(path.split("?")[0])}'
            assert any(request_line in line and f'" {status}' in line for line in lines), (method, path, status)


def test_an_identifier_written_as_typed_in_a_url_is_read_by_the_server_and_masked_in_its_log(served, city):
    """Session 27's operator: the server reads a PAN, card number or citizen ID as a person types it (in groups,
    full-width, `+` for a space in a query), so `/bank-accounts/6217%200073%201067%201442%20606/statement`
    answered the statement, and the log showed the PAN in clear: the masking looked for 19 ASCII digits."""
    from urllib.parse import quote, unquote

    from sscard.core.identifiers import normalise

    server, log_format = served
    active = activated(city, name="王五", pin=PIN_ACTIVE, opening_fen=100_000)
    teller = {"Authorization": f"Bearer {city.token('teller')}"}
    clerk = {"Authorization": f"Bearer {city.token('clerk')}"}
    wide = "".join(chr(ord(c) + 0xFEE0) for c in active.pan)
    grouped = " ".join(active.pan[i:i + 4] for i in range(0, len(active.pan), 4))
    card = active.card_number
    urls = [
        (f"/api/v1/bank-accounts/{quote(grouped)}/statement", teller),
        (f"/api/v1/bank-accounts/{quote(wide)}/statement", teller),
        ("/api/v1/bank-accounts/" + "".join(f"%{ord(c):02X}" for c in active.pan) + "/statement", teller),
        (f"/api/v1/cards/{quote(card[:5] + ' ' + card[5:])}", clerk),
        (f"/api/v1/cards/{card.lower()}", clerk),
        (f"/api/v1/persons?citizen_id={quote(active.citizen_id[:6] + ' ' + active.citizen_id[6:])}", clerk),
        (f"/api/v1/identifiers/check?kind=pan&value={active.pan[:6]}+{active.pan[6:]}", {}),
        (f"/api/v1/identifiers/check?kind=pan&value={quote(grouped)}", {}),
    ]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for url, headers in urls:
            answer = client.get(url, headers=headers)
            assert answer.status_code == 200, (url, answer.status_code, answer.text[:200])  # read as the number
    log = server.stop()
    assert log.count("200") >= len(urls), log[-2000:]
    as_read = normalise(unquote(log.replace("+", " ")))
    for identifier in (active.pan, active.citizen_id, card):
        assert identifier not in as_read, f"{identifier} reached the {log_format} log"


def test_masking_finds_identifiers_as_typed_and_leaves_ordinary_text_alone():
    assert mask_text("6217 0073 1067 1442 606") == "621700*********2606"
    assert mask_text("card m2379 7286.") == "card M2*****86."
    assert mask_text("value=621700+7310671442606&x=1") == "value=621700*********2606&x=1"
    assert mask_text("\uff16\uff12\uff11\uff17\uff10\uff10\uff17\uff13\uff11\uff10\uff16\uff17\uff11"
                     "\uff14\uff14\uff12\uff16\uff10\uff16").count("*") == 9  # full-width: 10 digits shown, as ASCII
    for text in ("ended 0 idle call(s)", "2026-12-07T09:02:37.601+00:00 127.0.0.1:5 200 3", "来电 12333 菜单",
                 "accounts 163 transfers 265", "GET /api/v1/bank-accounts/622202*********4413/statement"):
        assert mask_text(text) == text


# ---- the logging set-up alone, with uvicorn's own formatters ---------------------------------------------


def _uvicorn_access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:5000", "GET", path, "1.1", 200), None)


def test_finding4_masking_keeps_uvicorns_access_formatter_working():
    from uvicorn.logging import AccessFormatter

    record = _uvicorn_access_record("/api/v1/bank-accounts/6222027436751784413/statement?pin=460245")
    MaskingFilter().filter(record)
    line = MaskingFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')).format(record)
    assert line == '127.0.0.1:5000 - "GET /api/v1/bank-accounts/622202*********4413/statement?pin=*** HTTP/1.1" 200 OK'


def test_a_certificates_verification_code_in_a_scanned_qr_link_never_reaches_the_log():
    """Session 22's privacy probe: the QR code's link (GET /portal/verify?code=...) put the whole code in
    the access line, and whoever reads the log could then fetch the certificate; the database keeps only
    its digest and last 4 characters. Every log line now masks a code (grouped or not, any case) as it
    masks an ID; a 17-character word whose check character fails is left alone."""
    from uvicorn.logging import AccessFormatter

    from sscard.core.certificates import grouped, new_code

    code = new_code()
    for path in (f"/portal/verify?code={code}", f"/portal/verify?code={grouped(code)}",
                 f"/portal/verify?code={grouped(code).lower()}"):
        record = _uvicorn_access_record(path)
        MaskingFilter().filter(record)
        for formatter in (MaskingFormatter(AccessFormatter('%(request_line)s')), JsonFormatter()):
            line = formatter.format(record)
            assert code[:13] not in line.upper().replace("-", "") and code[-4:] in line.upper().replace("-", "")
    wrong_check = code[:-1] + next(c for c in "0123456789" if c != code[-1])
    assert mask_text(f"x {wrong_check} y") == f"x {wrong_check} y"


def test_finding4_a_traceback_in_a_log_line_is_masked_and_capped():
    try:
        raise ValueError(f"{{'presented_citizen_id': '11010519491231002X', 'pin': '460245', 'x': '{BIG}'}}")
    except ValueError:
        record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application",
                                   None, sys.exc_info())
    MaskingFilter().filter(record)
    for formatter in (MaskingFormatter(logging.Formatter()), JsonFormatter()):
        text = formatter.format(record)
        assert "460245" not in text and "11010519491231002X" not in text
        assert max(len(line) for line in text.splitlines()) <= max(MAX_JSON, MAX_LINE) + 64


def test_finding3_values_under_secret_keys_are_masked_in_any_shape():
    assert mask_secrets("{'pin': '460245', 'amount_fen': 5}") == "{'pin': '***', 'amount_fen': 5}"
    assert mask_secrets('{"new_password":"s3cret-pass","x":1}') == '{"new_password":"***","x":1}'
    assert mask_secrets("/x?pin_again=460245&lang=en") == "/x?pin_again=***&lang=en"
    assert mask_secrets("'input': {'old': '460245', 'new': '285047'}, 'loc'") == "'input': ***, 'loc'"
    assert mask_secrets("Authorization: Bearer abc.def") == "Authorization: ***"
    assert mask_secrets("/persons/by-name?name=%E5%BC%A0%E4%B8%89&birth_date=1980-05-17") == (
        "/persons/by-name?name=***&birth_date=***")
    assert mask_secrets("shipping: 3 boxes, pinned: yes, username=x") == "shipping: 3 boxes, pinned: yes, username=x"


def test_json_lines_carry_the_requests_id_actor_and_operation():
    from sscard.core.roles import CLI_OPERATOR
    from sscard.logs import _REQUEST, RequestLog, note_operation

    token = _REQUEST.set(RequestLog("req-1"))
    try:
        note_operation("bank.statement", CLI_OPERATOR)
        record = logging.LogRecord("sscard.db", logging.WARNING, __file__, 1, "retrying after %s", ("X",), None)
        MaskingFilter().filter(record)
    finally:
        _REQUEST.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "retrying after X" and line["logger"] == "sscard.db" and line["level"] == "WARNING"
    assert (line["request_id"], line["actor_kind"], line["operation"]) == ("req-1", "operator", "bank.statement")


def test_finding4_a_long_text_is_cut_after_masking_so_no_identifier_is_left_half_shown():
    from sscard.logs import MAX_TEXT, clean

    text = "x" * (MAX_TEXT - 10) + " 11010519491231002X " + "y" * 1_000_000
    out = clean(text)
    assert "110105194" not in out and len(out) < MAX_TEXT + 64


def test_finding4_a_broken_log_call_gives_a_line_not_a_logging_error():
    record = logging.LogRecord("sscard.x", logging.WARNING, __file__, 1, "%s and %s", ("one pin=460245",), None)
    MaskingFilter().filter(record)
    text = MaskingFormatter(logging.Formatter()).format(record)
    assert "sscard.x" in text and "460245" not in text
