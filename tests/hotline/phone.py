"""A test telephone: plays a call through the voice webhook by following the TwiML it answers.

Gather -> the test presses keys (or stays silent); Say -> its text is heard; Redirect -> followed;
Hangup -> the call is over. Everything said is kept in `heard`, the last response's text in `last`.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from urllib.parse import quote


class Phone:
    def __init__(self, client, line: str = "12333", sid: str | None = None, caller: str = "+8613800138000"):
        self.client = client
        self.line = line
        self.sid = sid or "CA" + uuid.uuid4().hex
        self.caller = caller
        self.heard: list[str] = []
        self.last: list[str] = []
        self.gather: dict | None = None
        self.redirect: str | None = None
        self.ended = False
        self.responses: list[str] = []
        self._post(f"/api/v1/hotline/{quote(line, safe=':')}/voice", {})

    # -- the caller's side

    def press(self, digits: str) -> Phone:
        """Key in digits for the current Gather (Twilio strips the finishing #)."""
        assert not self.ended, "the call has ended"
        assert self.gather is not None, "nothing is waiting for keys"
        url = self.gather["action"]
        self.gather = None
        self.last = []
        self._post(url, {"Digits": digits})
        return self

    def silence(self) -> Phone:
        """The Gather times out: with actionOnEmptyResult, Twilio posts an empty Digits."""
        return self.press("")

    def silence_via_redirect(self) -> Phone:
        """A Gather that posts nothing: Twilio goes on to the Redirect after it."""
        assert self.gather is not None and self.redirect
        self.gather = None
        self.last = []
        self._post(self.redirect, {})
        return self

    @property
    def text(self) -> str:
        return "\n".join(self.last)

    @property
    def all_text(self) -> str:
        return "\n".join(self.heard)

    # -- following TwiML

    def _post(self, url: str, extra: dict) -> None:
        data = {"CallSid": self.sid, "From": self.caller, **extra}
        response = self.client.post(url, data=data)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        self.responses.append(response.text)
        self._follow(response.text)

    def _hear(self, element) -> None:
        text = (element.text or "").strip()
        self.heard.append(text)
        self.last.append(text)

    def _follow(self, body: str) -> None:
        root = ET.fromstring(body)
        assert root.tag == "Response"
        self.redirect = None
        for element in root:
            if element.tag == "Say":
                self._hear(element)
            elif element.tag == "Gather":
                for child in element:
                    if child.tag == "Say":
                        self._hear(child)
                self.gather = dict(element.attrib)
            elif element.tag == "Redirect":
                if self.gather is not None:
                    self.redirect = element.text  # only reached when the Gather posts nothing
                    return
                self._post(element.text, {})
                return
            elif element.tag == "Hangup":
                self.ended = True
                return
            else:
                raise AssertionError(f"unexpected TwiML verb {element.tag}")


def keys_for_citizen_id(citizen_id: str) -> str:
    """On a phone keypad an ID's final X is typed as *."""
    return citizen_id.replace("X", "*")
