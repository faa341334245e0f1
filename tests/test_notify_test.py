"""`orderwatch alerts notify-test`: one clearly marked test message through a receiver, to a real SMTP
server and a real HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aiohttp import web

from tests.alerts_helpers import alerts_cli
from tests.notify_servers import HttpRecorderThread, SmtpSink

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, smtp_port: int, url: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(f"""
owners:
  people:
    li.wei: {{name: 李伟, email: li.wei@example.com, language: zh, timezone: Asia/Shanghai}}
    anna: {{name: Anna Schmidt, email: anna@example.com, language: en}}
receivers:
  - {{name: mail, type: email, from: orderwatch@example.com, smtp: {{host: 127.0.0.1, port: {smtp_port}}}}}
  - {{name: hook, type: webhook, url: "{url}/hook"}}
route: {{receiver: hook}}
""", encoding="utf-8")
    return path


def notify_test(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*alerts_cli(), "alerts", "notify-test", "--alerts", str(path), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def test_an_email_test_message_reaches_the_person_marked_as_a_test(tmp_path: Path) -> None:
    with SmtpSink() as smtp, HttpRecorderThread() as http:
        path = write(tmp_path, smtp.port, http.url)
        res = notify_test(path, "mail", "--person", "li.wei")
        assert res.returncode == 0, res.stderr
        assert "test message sent through mail (email) to person:li.wei" in res.stdout
        res = notify_test(path, "mail", "--person", "anna")
        assert res.returncode == 0, res.stderr
    zh, en = smtp.to("li.wei@example.com"), smtp.to("anna@example.com")
    assert len(zh) == len(en) == 1 and len(smtp.messages) == 2
    assert "【测试】" in zh[0]["Subject"] and "请忽略" in zh[0]["Subject"]
    assert "[TEST]" in en[0]["Subject"] and "please ignore" in en[0]["Subject"]
    assert "notify-test" in en[0].get_content() and "mail" in en[0].get_content()
    assert http.requests == []  # only the receiver named


def test_a_webhook_test_message_carries_the_test_label(tmp_path: Path) -> None:
    with SmtpSink() as smtp, HttpRecorderThread() as http:
        path = write(tmp_path, smtp.port, http.url)
        res = notify_test(path, "hook")
        assert res.returncode == 0, res.stderr
    (request,) = http.requests
    body = request.json()
    assert request.path == "/hook"
    assert "[TEST]" in str(body) and '"test": "true"' in request.body.decode()


def test_a_refusing_endpoint_exits_1_with_its_answer(tmp_path: Path) -> None:
    with SmtpSink() as smtp, HttpRecorderThread() as http:
        http.replies["/hook"] = lambda r: (503, web.Response(text="down for maintenance"))
        path = write(tmp_path, smtp.port, http.url)
        res = notify_test(path, "hook")
    assert res.returncode == 1
    assert "hook: not delivered" in res.stderr and "503" in res.stderr


def test_mistakes_in_the_command_exit_2_and_say_what_is_known(tmp_path: Path) -> None:
    with SmtpSink() as smtp, HttpRecorderThread() as http:
        path = write(tmp_path, smtp.port, http.url)
        res = notify_test(path, "pager")
        assert res.returncode == 2 and "no receiver 'pager'; known: hook, mail" in res.stderr
        res = notify_test(path, "mail")
        assert res.returncode == 2 and "--person" in res.stderr  # an email needs an address
        res = notify_test(path, "mail", "--person", "nobody")
        assert res.returncode == 2 and "known: anna, li.wei" in res.stderr
    assert smtp.messages == [] and http.requests == []
