"""An outside-in probe of a running sscard server, as outside testers attack it (session 9, docs/API.md).

    sscard demo --people 200 --json var/demo.json && sscard serve --port 8000 2> var/server.log &
    .venv/bin/python tools/outside_in.py http://127.0.0.1:8000 --demo var/demo.json --log var/server.log

With a real HTTP client (the standard library's, one connection per request; raw sockets for what no client
library sends), every route of /openapi.json and every web page is tried with every method, every kind of
credential (none, forged, another channel's), malformed bodies (oversized, other content types, invalid
UTF-8, too deeply nested, NaN, duplicate keys), money that is not a strict integer of fen, odd path
parameters (traversal, NUL, encodings, very long), duplicate query parameters and odd headers. A finding is
a 5xx, a 405 without an honest Allow, a request that should be refused and was not (money, traversal,
an oversized body read whole), a secret (a password, PIN, token) in any answer or log line, and a citizen
ID or PAN unmasked in a refusal or the log. Prints each finding; exit 1 when there is any. It writes
(refused or tiny) records: a demo database only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import sys
import time
from collections import Counter
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlsplit

STEPS = ("methods", "credentials", "bodies", "money", "paths", "queries", "headers", "web", "raw", "log")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO")
WEB_PATHS = ("/", "/lang/en", "/console", "/console/login", "/console/production", "/console/report",
             "/console/persons/1", "/bank", "/bank/login", "/bank/deposit", "/bank/statement", "/portal",
             "/portal/login", "/portal/card", "/portal/verify", "/portal/password", "/docs", "/static/sscard.css")
WEB_FORMS = {  # every form of the three web surfaces, with a plausible filling (the probe mutates each field)
    "portal": ("/portal/loss/report", "/portal/loss/cancel", "/portal/password/query", "/portal/password/ss",
               "/portal/certificate", "/portal/verify"),
    "console": ("/console/find", "/console/persons/{person_id}/identity-check", "/console/persons/{person_id}/attorneys",
                "/console/attorneys/1/revoke", "/console/visits/1/end", "/console/visits/1/show-id",
                "/console/production/start", "/console/production/B1/complete", "/console/hotline/1/take"),
    "bank": ("/bank/account", "/bank/activate", "/bank/loss", "/bank/deposit", "/bank/withdraw", "/bank/pin-reset",
             "/bank/close", "/bank/statement", "/bank/statement.pdf", "/bank/slip.pdf", "/bank/supervisor",
             "/bank/customer/end"),
}
BAD_FORM = ("", "-1", "1e3", "NaN", "999999999999999.99", "0.001", "٣", "１００", "1700000000", "2026-13-45",
            "x" * 20_000, "\x00", "%ff", "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd")
BAD_FEN = (-1, 1.5, 100.0, "100", 10**20, True, None, 1e2, "1e2", [100], {"fen": 100}, 2**63, -(2**63))
BAD_PATH = ("..", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%00", "x%00y", "a" * 5000, "%ff%fe",
            "１２３", "💳", "%20", "-1", "0", "99999999999999999999", "1e3", "null", "%0d%0aSet-Cookie:%20x=1")
CID = re.compile(r"(?<![0-9A-Za-z*])\d{17}[\dX](?![0-9A-Za-z])")
PAN = re.compile(r"(?<![0-9*])(?:622202|621700)\d{13}(?![0-9])")


def luhn(number: str) -> bool:
    digits = [int(c) for c in number][::-1]
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits)) % 10 == 0


def citizen_check(cid: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(c) * w for c, w in zip(cid[:17], weights, strict=True)) % 11] == cid[17]


class Probe:
    def __init__(self, base: str, demo: dict, log: Path | None):
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.demo, self.logfile = demo, log
        self.findings: list[str] = []
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        staff = {s["username"]: s for s in demo["staff"]}
        self.secrets = {s["password"] for s in demo["staff"]} | {s["api_token"] for s in demo["staff"]}
        self.secrets |= {t["token"] for t in demo["terminals"]}
        self.secrets |= {c["query_password"] for c in demo["sample_cardholders"] if c.get("query_password")}
        self.pins = {c["bank_pin"] for c in demo["sample_cardholders"] if c.get("bank_pin")}
        self.holder = next(c for c in demo["sample_cardholders"] if c["bank_status"] == "active")
        bank = self.holder["bank"]
        terminals = {t["kind"]: t["token"] for t in demo["terminals"] if t["where"] in (bank, "") or t["kind"]
                     not in ("atm", "pos")}
        terminals |= {t["kind"]: t["token"] for t in demo["terminals"] if t["kind"] in ("atm", "pos")
                      and (t["where"] == bank or t["where"].startswith(bank + "-"))}
        self.tokens = {
            "operator": staff["admin"]["api_token"], "clerk": staff["clerk01"]["api_token"],
            "center_supervisor": staff["csup01"]["api_token"],
            "teller": next(s["api_token"] for s in demo["staff"] if s["role"] == "teller" and bank in s["where"]),
            "bank_supervisor": next(s["api_token"] for s in demo["staff"] if s["role"] == "bank_supervisor"
                                    and bank in s["where"]),
            **{f"terminal:{k}": v for k, v in terminals.items()},
        }
        status, _, body = self.request("POST", "/api/v1/cardholder/login", json_body={
            "login": self.holder["card_number"], "password": self.holder["query_password"]})
        if status == 200:
            self.tokens["cardholder"] = json.loads(body)["token"]
            self.secrets.add(self.tokens["cardholder"])
        self.values = {"pan": self.holder["pan"], "card_number": self.holder["card_number"],
                       "person_id": str(self.holder["person_id"]), "line": "12333"}
        # signed in first: the other probes' wrong passwords make the login throttle refuse this address
        self.sessions = {surface: self.web_login(surface) for surface in WEB_FORMS}

    # ------------------------------------------------------------ sending

    def request(self, method: str, path: str, *, body: bytes | None = None, json_body=None,
                headers: dict | None = None, token: str | None = None, note: str = "",
                jar: dict | None = None) -> tuple[int, dict, bytes]:
        """One request on a new connection; `jar` (a dict of cookies) is sent and kept up to date."""
        headers = dict(headers or {})
        if jar:
            headers.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in jar.items()))
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if token:
            headers.setdefault("Authorization", f"Bearer {token}")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status, got = response.status, {k.lower(): v for k, v in response.getheaders()}
            if jar is not None:
                for line in response.msg.get_all("Set-Cookie") or ():
                    for name, morsel in SimpleCookie(line).items():
                        if morsel["max-age"] == "0" or not morsel.value.strip('"'):
                            jar.pop(name, None)
                        else:
                            jar[name] = morsel.value
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            self.find(f"{method} {path[:120]} {note}: the connection failed: {type(exc).__name__}: {exc}")
            return 0, {}, b""
        finally:
            conn.close()
        self.sent += 1
        self.statuses[status] += 1
        self.check_answer(method, path, status, got, data, note, sent=(body or b"") + str(headers).encode())
        return status, got, data

    def send_raw(self, request: bytes, note: str, waits: bool = False) -> int:
        """A request no client library sends (invalid UTF-8 in the request line, a lying Content-Length).
        `waits`: the server rightly waits for the rest (a body shorter than its Content-Length)."""
        with socket.create_connection((self.host, self.port), timeout=5 if waits else 30) as s:
            s.sendall(request)
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
                    if b"\r\n\r\n" in data and len(data) > 4096:
                        break
            except TimeoutError:
                pass
        self.sent += 1
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        self.statuses[status] += 1
        if status >= 500 or (status == 0 and not waits):
            self.find(f"raw {note}: answered {status or 'nothing'}")
        head, _, body = data.partition(b"\r\n\r\n")
        self.check_answer("RAW", note, status, {}, body, note, sent=request)
        return status

    def find(self, text: str) -> None:
        if text not in self.findings:
            self.findings.append(text)
            print("FINDING", text, flush=True)

    def check_answer(self, method: str, path: str, status: int, headers: dict, data: bytes, note: str,
                     sent: bytes) -> None:
        where = f"{method} {path[:100]} {note}".strip()
        if status >= 500:
            self.find(f"{where}: {status} {data[:160]!r}")
        if status == 405 and not headers.get("allow", "x").strip() and method != "RAW":
            self.find(f"{where}: 405 without Allow")
        text = data.decode("utf-8", "replace") + " " + " ".join(f"{k}: {v}" for k, v in headers.items()
                                                                 if k != "set-cookie")
        for secret in self.secrets | self.pins:
            if secret and secret in text and secret.encode() not in sent:
                self.find(f"{where}: a secret ({secret[:3]}...) is in the answer")
        if status >= 400 or not sent.count(b"Bearer"):
            for cid in CID.findall(text):
                if citizen_check(cid) and cid.encode() not in sent:
                    self.find(f"{where}: {status} holds an unmasked citizen ID it was not sent")
            for pan in PAN.findall(text):
                if luhn(pan) and pan.encode() not in sent:
                    self.find(f"{where}: {status} holds an unmasked PAN it was not sent")

    # ------------------------------------------------------------ the probes

    def token_for(self, op: dict, path: str) -> str | None:
        """A token the operation admits on this path's channel (terminals only on /api/v1/terminal/)."""
        roles = op.get("x-roles", [])
        if path.startswith("/api/v1/terminal/"):
            for kind in op.get("x-terminal-kinds", []) or ("atm", "pos", "kiosk", "hospital"):
                if f"terminal:{kind}" in self.tokens:
                    return self.tokens[f"terminal:{kind}"]
        for role in ("operator", "clerk", "center_supervisor", "teller", "bank_supervisor", "cardholder"):
            if role in roles and role in self.tokens:
                return self.tokens[role]
        return self.tokens["operator"] if op.get("security") else None

    def fill(self, path: str, value: str | None = None) -> str:
        """The path with our sample's identifiers, or every parameter `value` (percent-encoded where it is
        not ASCII; its own %-escapes are sent as they are)."""
        odd = quote(value, safe="%/:") if value is not None else None
        return re.sub(r"{([^}]*)}", lambda m: odd if odd is not None else self.values.get(m.group(1), "1"), path)

    def sample_body(self, spec: dict, op: dict) -> dict | None:
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if not content:
            return None
        schema = content["schema"]
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
        body = {}
        for name, prop in schema.get("properties", {}).items():
            if name not in schema.get("required", ()):
                continue
            kind = prop.get("type") or next((p.get("type") for p in prop.get("anyOf", []) if p.get("type") != "null"),
                                            "string")
            body[name] = (self.values.get(name) or {"integer": 1, "boolean": False, "array": [],
                                                    "object": {}}.get(kind, "1"))
            if name in ("pan", "from_pan", "to_pan"):
                body[name] = self.holder["pan"]
            if "pin" in name:
                body[name] = "000000"  # a wrong PIN: counted, never a success
        return body

    def methods(self, spec: dict) -> None:
        for path in [*spec["paths"], *WEB_PATHS]:
            url = self.fill(path)
            served = {m.upper() for m in spec["paths"].get(path, {})}
            for method in METHODS:
                status, headers, _ = self.request(method, url, note="(method)")
                if status == 405:
                    allow = {m.strip() for m in headers.get("allow", "").split(",") if m.strip()}
                    if served and not served <= allow:
                        self.find(f"{method} {path}: 405 Allow {sorted(allow)} misses {sorted(served - allow)}")
                    if method in allow:
                        self.find(f"{method} {path}: 405 while Allow names {method}")

    def credentials(self, spec: dict) -> None:
        cardholder = self.tokens.get("cardholder", "ch.x")
        odd = {"none": None, "forged": "x" * 43, "empty": "", "long": "t" * 9000, "forged_cardholder": "ch.e30.x.y",
               "tampered_cardholder": cardholder[:-4] + "AAAA", "unicode": "токен", "basic": None}
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                url = self.fill(path)
                for name, token in odd.items():
                    headers = {"Authorization": "Basic YWRtaW46eA=="} if name == "basic" else {}
                    if name == "unicode":
                        headers = {"Authorization": "Bearer %D1%82"}
                    elif token is not None:
                        headers = {"Authorization": f"Bearer {token}"}
                    status, _, _ = self.request(method.upper(), url, json_body=self.sample_body(spec, op) or None,
                                                headers={**headers, "Idempotency-Key": f"oi-{self.sent}"},
                                                note=f"(token {name})")
                    if op.get("security") and 200 <= status < 300:
                        self.find(f"{method.upper()} {path}: {status} with a {name} token")
                for kind, token in self.tokens.items():
                    terminal_path = path.startswith("/api/v1/terminal/")
                    if not op.get("security") or kind.startswith("terminal:") == terminal_path:
                        continue
                    status, _, _ = self.request(method.upper(), url, json_body=self.sample_body(spec, op) or None,
                                                token=token, headers={"Idempotency-Key": f"oi-{self.sent}"},
                                                note=f"(another channel's token: {kind})")
                    if status not in (401, 403):
                        self.find(f"{method.upper()} {path}: {status} for another channel's token ({kind})")

    def bodies(self, spec: dict) -> None:
        big = b'{"pan": "' + b"9" * (20 * 2**20) + b'"}'
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if "requestBody" not in op:
                    continue
                url, token = self.fill(path), self.token_for(op, path)
                key = {"Idempotency-Key": "oi-body"}
                good = json.dumps(self.sample_body(spec, op) or {}).encode()
                cases = [
                    ("oversized 20 MiB", big, "application/json"),
                    ("too deep", b"[" * 100_000 + b"]" * 100_000, "application/json"),
                    ("invalid UTF-8", b'{"pan": "\xff\xfe\xfd"}', "application/json"),
                    ("UTF-16", good.decode().encode("utf-16"), "application/json"),
                    ("BOM", b"\xef\xbb\xbf" + good, "application/json"),
                    ("NaN", b'{"amount_fen": NaN, "pan": "1"}', "application/json"),
                    ("huge number", b'{"amount_fen": 1' + b"0" * 5000 + b"}", "application/json"),
                    ("1e400", b'{"amount_fen": 1e400}', "application/json"),
                    ("duplicate keys", b'{"amount_fen": 1, "amount_fen": 2, "pan": "1", "pan": "2"}', "application/json"),
                    ("a list", b"[]", "application/json"), ("null", b"null", "application/json"),
                    ("a string", b'"x"', "application/json"), ("empty", b"", "application/json"),
                    ("text/plain", good, "text/plain"), ("a form", b"pan=1&amount_fen=1", "application/x-www-form-urlencoded"),
                    ("multipart", b"--b\r\nContent-Disposition: form-data; name=\"pan\"\r\n\r\n1\r\n--b--\r\n",
                     "multipart/form-data; boundary=b"),
                    ("multipart, no boundary", b"--b\r\n", "multipart/form-data"),
                    ("xml", b"<pan>1</pan>", "application/xml"), ("no content type", good, ""),
                    ("json+latin-1", good, "application/json; charset=latin-1"),
                    ("vendor+json", good, "application/vnd.evil+json"),
                    ("many keys", json.dumps({f"k{i}": i for i in range(50_000)}).encode(), "application/json"),
                ]
                for note, body, ctype in cases:
                    headers = {**key, **({"Content-Type": ctype} if ctype else {})}
                    status, _, _ = self.request(method.upper(), url, body=body, headers=headers, token=token,
                                                note=f"(body: {note})")
                    if note.startswith("oversized") and status != 413:
                        self.find(f"{method.upper()} {path}: a 20 MiB body answered {status}, not 413 (read whole)")
                if op.get("security"):  # the caller first: an unreadable body without a credential is 401
                    for note, body in (("cut short", b'{"amount_fen": 1,'), ("invalid UTF-8", b'{"pan": "\xff"}')):
                        status, _, _ = self.request(method.upper(), url, body=body, token=None, note=f"(body: {note})",
                                                    headers={**key, "Content-Type": "application/json"})
                        if status != 401:
                            self.find(f"{method.upper()} {path}: a body {note} without a credential answered "
                                      f"{status}, not 401")

    def money(self, spec: dict) -> None:
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                body = self.sample_body(spec, op)
                if not body:
                    continue
                fen = [k for k in body if k.endswith("_fen")]
                for field in fen:
                    for bad in BAD_FEN:
                        status, _, data = self.request(method.upper(), self.fill(path), json_body={**body, field: bad},
                                                       token=self.token_for(op, path),
                                                       headers={"Idempotency-Key": f"oi-fen-{self.sent}"},
                                                       note=f"({field}={bad!r})")
                        if status != 422:
                            self.find(f"{method.upper()} {path}: {field}={bad!r} answered {status}, not 422 "
                                      f"{data[:120]!r}")

    def paths(self, spec: dict) -> None:
        for path, ops in spec["paths"].items():
            if "{" not in path:
                continue
            for method, op in ops.items():
                for value in BAD_PATH:
                    url = self.fill(path, value)
                    status, _, _ = self.request(method.upper(), url, json_body=self.sample_body(spec, op) or None,
                                                token=self.token_for(op, path), headers={"Idempotency-Key": "oi-path"},
                                                note="(path parameter)")
                    if 200 <= status < 300 and ".." in value.replace("%2e", ".").replace("%2F", "/"):
                        self.find(f"{method.upper()} {path}: {status} for a traversal {value!r}")

    def queries(self, spec: dict) -> None:
        for path, ops in spec["paths"].items():
            op = ops.get("get")
            if not op:
                continue
            params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
            url, token = self.fill(path), self.token_for(op, path)
            for q in ("limit=1&limit=1000000", "x=1&x=2", "%ff=%fe", "a=" + "b" * 8000, "lang=en&lang=zh",
                      *(f"{p}=1&{p}=2" for p in params), *(f"{p}=%00" for p in params),
                      *(f"{p}=-1" for p in params), *(f"{p}=99999999999999999999999" for p in params),
                      *(f"{p}=1700000000" for p in params)):
                self.request("GET", f"{url}?{q}", token=token, note=f"(query {q[:40]})")

    def headers(self, spec: dict) -> None:
        op = spec["paths"]["/api/v1/terminal/balance"]["post"]
        body = self.sample_body(spec, op)
        token = self.token_for(op, "/api/v1/terminal/balance")
        for headers in ({"Idempotency-Key": "k" * 81}, {"Idempotency-Key": "ключ".encode()}, {"Idempotency-Key": ""},
                        {"Accept-Language": "en;q=abc, " * 500}, {"Accept-Language": "*;q=0"},
                        {"X-Forwarded-For": "1.2.3.4, " * 200}, {"Cookie": "lang=" + "e" * 5000},
                        {"Cookie": "sscard_portal=x; sscard_staff=y"}, {"Content-Length": "5"}):
            self.request("POST", "/api/v1/terminal/balance", json_body=body, token=token, headers=headers,
                         note=f"(header {list(headers)[0]})")

    def web_login(self, surface: str) -> tuple[dict, str]:
        """Sign in on a surface through its own forms, as a browser does: (cookies, the CSRF token of its pages)."""
        jar: dict = {}
        staff = {s["username"]: s for s in self.demo["staff"]}
        bank = self.holder["bank"]
        teller = next(s for s in self.demo["staff"] if s["role"] == "bank_supervisor" and bank in s["where"])
        login_page = f"/{surface}/login"
        _, _, page = self.request("GET", login_page, jar=jar, note="(web login page)")
        field = "pre_token" if surface == "portal" else "login_token"
        token = re.search(rf'name="{field}" value="([^"]+)"'.encode(), page)
        if surface == "portal":
            form = {"login": self.holder["card_number"], "password": self.holder["query_password"]}
        else:
            user = staff["csup01"] if surface == "console" else teller
            form = {"username": user["username"], "password": user["password"]}
        form[field] = token.group(1).decode() if token else ""
        self.request("POST", login_page, body=_form(form), jar=jar, note="(web login)",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        status, headers, page = self.request("GET", f"/{surface}" if surface != "portal" else "/portal/card", jar=jar,
                                             note="(web page)")
        if status == 303:  # the portal's first sign-in goes to the password page
            _, _, page = self.request("GET", headers.get("location", "/"), jar=jar, note="(web page)")
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page) or re.search(rb'"X-CSRF-Token": "([^"]+)"', page)
        if not jar or csrf is None:
            self.find(f"web: could not sign in on /{surface} (cookies {sorted(jar)})")
        return jar, csrf.group(1).decode() if csrf else ""

    def web(self, spec: dict) -> None:
        h = self.holder
        base = {"pan": h["pan"], "citizen_id": h["citizen_id"], "card_number": h["card_number"], "query": h["citizen_id"],
                "amount": "1.00", "pin": "000000", "pin_again": "000000", "presenter": "cardholder", "reason": "probe",
                "confirm": "yes", "in_person": "yes", "new": "135792", "new_again": "135792", "old": "000000",
                "days": "30", "name": h["name"], "birth_date": h["birth_date"], "agent_name": "李四",
                "agent_citizen_id": "11010519491231002X", "valid_from": "2026-01-01", "valid_to": "2027-01-01",
                "document_ref": "probe", "scope": "replacement.apply", "step": "confirmed", "action": "written",
                "task": "extend", "code": "X", "year": "2026", "person_id": str(h["person_id"])}
        signed_out: Counter[str] = Counter()  # forms answered by a redirect to sign in (the probe's coverage)
        for surface, forms in WEB_FORMS.items():
            jar, csrf = self.sessions[surface]
            for path in forms:
                url = self.fill(path)
                for field in base:
                    for bad in BAD_FORM:
                        form = {**base, field: bad, "csrf_token": csrf}
                        status, got, _ = self.request("POST", url, body=_form(form), jar=dict(jar),
                                                      headers={"Content-Type": "application/x-www-form-urlencoded",
                                                               "X-CSRF-Token": csrf},
                                                      note=f"(form {field}={bad[:12]!r})")
                        signed_out[surface] += "/login" in got.get("location", "")
                        if surface == "bank" and field == "amount" and bad in ("999999999999999.99", "٣", "-1") \
                                and status == 200 and path in ("/bank/deposit", "/bank/withdraw"):
                            self.find(f"POST {path}: amount {bad!r} answered 200")
                # the same form twice in one body, and a body that is no form at all
                self.request("POST", url, body=_form({**base, "csrf_token": csrf}) + b"&amount=2&amount=3&pan=1",
                             jar=dict(jar), headers={"Content-Type": "application/x-www-form-urlencoded"},
                             note="(duplicate fields)")
                self.request("POST", url, body=b"\xff\xfe" * 100, jar=dict(jar),
                             headers={"Content-Type": "multipart/form-data; boundary=x", "X-CSRF-Token": csrf},
                             note="(a broken multipart body)")
        print(f"   web forms sent back to sign in (session ended by a form, or refused): {dict(signed_out)}")

    def raw(self, spec: dict) -> None:
        host = f"Host: {self.host}\r\n".encode()
        for note, line in (("invalid UTF-8 in the path", b"GET /api/v1/cards/\xff\xfe HTTP/1.1\r\n"),
                           ("a 100 KiB path", b"GET /api/v1/cards/" + b"a" * 100_000 + b" HTTP/1.1\r\n"),
                           ("a NUL in the path", b"GET /api/v1/cards/a\x00b HTTP/1.1\r\n"),
                           ("an absolute URI", b"GET http://evil.example/api/v1/identifiers/check HTTP/1.1\r\n"),
                           ("a path without a slash", b"GET api/v1/cards HTTP/1.1\r\n"),
                           ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n")):
            self.send_raw(line + (host if b"1.1" in line else b"") + b"Connection: close\r\n\r\n", note)
        self.send_raw(b"POST /api/v1/terminal/balance HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                 b"Content-Length: 100\r\nConnection: close\r\n\r\n{}", "a body shorter than its Content-Length",
                      waits=True)
        self.send_raw(b"POST /api/v1/terminal/balance HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n"
                 b"Content-Type: application/json\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "a bad chunk size")

    def log(self, spec: dict) -> None:
        time.sleep(1)
        if self.logfile is None or not self.logfile.exists():
            return
        for number, line in enumerate(self.logfile.read_text("utf-8", "replace").splitlines(), 1):
            if "Traceback" in line or " 500 " in line:
                self.find(f"log line {number}: {line[:160]}")
            for secret in self.secrets | self.pins:
                if secret and secret in line:
                    self.find(f"log line {number}: a secret ({secret[:3]}...) in clear")
            if any(citizen_check(c) for c in CID.findall(line)):
                self.find(f"log line {number}: an unmasked citizen ID")
            if any(luhn(p) for p in PAN.findall(line)):
                self.find(f"log line {number}: an unmasked PAN")

    def run(self, steps: list[str]) -> int:
        spec = json.loads(self.request("GET", "/openapi.json")[2])
        started = time.monotonic()
        for name in steps:
            getattr(self, name)(spec)
            print(f"-- {name}: {self.sent} requests so far", flush=True)
        print(f"{self.sent} requests in {time.monotonic() - started:.0f} s; statuses {dict(sorted(self.statuses.items()))}")
        print(f"{len(self.findings)} findings")
        return 1 if self.findings else 0


def _form(fields: dict) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--demo", type=Path, required=True, help="the JSON `sscard demo --json` wrote")
    parser.add_argument("--log", type=Path, help="the server's log, scanned at the end")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"which probes, of {','.join(STEPS)}")
    args = parser.parse_args()
    probe = Probe(args.url.rstrip("/"), json.loads(args.demo.read_text("utf-8")), args.log)
    return probe.run(args.steps.split(","))


if __name__ == "__main__":
    sys.exit(main())
