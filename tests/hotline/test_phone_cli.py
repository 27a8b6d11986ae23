"""`sscard phone 12333` in a real terminal (tmux): a caller types keys and reads the prompts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sscard.config import Settings
from sscard.core.clock import FixedClock
from sscard.core.roles import Channel
from sscard.services import audit, cards, passwords
from sscard.services.app import build_app
from tests.conftest import TEST_KEY
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import keys_for_citizen_id

ROOT = Path(__file__).resolve().parents[2]
SSCARD = Path(sys.executable).parent / "sscard"


def _needs_tmux() -> None:
    if shutil.which("tmux") is None:
        if os.environ.get("SSCARD_REQUIRE_BROWSER"):
            pytest.fail("tmux is required (SSCARD_REQUIRE_BROWSER is set) but is not installed")
        pytest.skip("tmux is not installed: the terminal call-flow test needs it")


class Pane:
    def __init__(self, name: str):
        self.name = name

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
                             capture_output=True, text=True, check=True).stdout
        return out

    def flat(self) -> str:
        """The screen without borders, spaces or line breaks (a long prompt may wrap anywhere)."""
        return re.sub(r"[\s│╭╮╰╯─]", "", self.screen())

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flat = self.flat()
            if text in flat:
                return flat
            time.sleep(0.15)
        raise AssertionError(f"{text!r} never appeared on the screen:\n{self.screen()}")

    def type(self, keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", keys], check=True)
        subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)


@pytest.fixture
def sim_db(tmp_path):
    """A SQLite database prepared like a small city, with one cardholder who set a keypad-typable password."""
    from tests.support import City

    url = f"sqlite:///{tmp_path / 'phone.db'}"
    settings = Settings(database_url=url, secret_key=TEST_KEY, var_dir=tmp_path, fast_hashing=True)
    app = build_app(settings, clock=FixedClock(), pool_size=2)
    app.db.migrate()
    city = City(app)
    card = city.issued_card("李四")
    passwords.change_query_password(app, city.cardholder(card, Channel.PORTAL), card.card_number[-6:],
                                    QUERY_PASSWORD, QUERY_PASSWORD)
    yield app, city, card, url, tmp_path
    app.close()


def test_temporary_loss_through_sscard_phone_in_a_terminal(sim_db):
    _needs_tmux()
    app, city, card, url, tmp = sim_db
    script = tmp / "call.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"export SSCARD_DATABASE_URL='{url}' SSCARD_SECRET_KEY='{TEST_KEY.hex()}' SSCARD_VAR_DIR='{tmp}'\n"
        f"cd '{ROOT}'\n"
        f"'{SSCARD}' phone 12333 --from +8613800138000\n"
        "echo \"[sscard exited $?]\"\n"
        "sleep 600\n"
    )
    script.chmod(0o755)
    name = f"sscard-phone-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "220", "-y", "60", str(script)], check=True)
    pane = Pane(name)
    try:
        pane.wait_for("普通话服务请按1")
        pane.type("1")
        pane.wait_for("社会保障卡临时挂失请按2")
        pane.type("2")
        pane.wait_for("请输入您的社会保障号码")
        pane.type(keys_for_citizen_id(card.citizen_id))
        pane.wait_for("请输入您的个人信息查询密码")
        pane.wait_for("密码（不显示）>")
        pane.type(QUERY_PASSWORD)
        screen = pane.wait_for("确认挂失请按1")
        assert "身份验证成功" in screen
        assert QUERY_PASSWORD not in screen  # typed without echo
        pane.type("1")
        pane.wait_for("临时挂失成功")
        pane.wait_for("95588")  # the bank side is reported separately (the same answer's next words: the
        # pane may be read between them, as CI once did)
        pane.type("0")
        screen = pane.wait_for("已为您登记人工服务")
        pane.wait_for("[sscardexited0]")
        assert QUERY_PASSWORD not in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)

    clerk = city.actor("clerk")
    assert cards.card_status(app, clerk, card.card_number)["ss_status"] == "temporary_loss"
    records = audit.read_audit(app, city.actor("csup"), operation="ss_loss.report_temporary")["records"]
    assert len(records) == 1 and records[0]["channel"] == "hotline_12333"
    from sscard.services import hotline

    queue = hotline.agent_queue(app, clerk)["requests"]
    assert len(queue) == 1 and queue[0]["identified"] and queue[0]["line"] == "12333"


def test_the_terminal_phone_hides_secrets_and_plays_the_bank_line(city, app):
    """The same simulator in-process, keys scripted: every secret prompt is read without echo."""
    from io import StringIO

    from rich.console import Console

    from sscard.cli.phone import run_call

    card = city.issued_card("钱十", phone="13600006666")
    script = iter(["1", "1", keys_for_citizen_id(card.citizen_id), "2", card.phone, "", "*", "0"])
    asked: list[tuple[str, bool]] = []

    def read_keys(prompt: str, secret: bool) -> str:
        asked.append((prompt, secret))
        return next(script)

    out = StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    status = run_call(app, "bank:GSB", console, read_keys, caller="+8613600007777")
    screen = out.getvalue()
    assert status == "agent"
    assert "工商银行" in screen and "身份验证成功" in screen and "口头挂失" in screen and "已为您登记人工服务" in screen
    assert [secret for _prompt, secret in asked] == [False] * 4 + [True] + [False] * 3
    assert asked[4][0].startswith("密码")
    assert "没有收到您的按键" in screen  # the empty entry was a timeout
    assert card.phone not in screen
