"""`sada preview` end to end, fed its answers on stdin, on a real SQLite file.

The first test runs the installed `sada` as a subprocess fed through a pipe; the others run
the same `main()` in this process (tests/sada_cli.py), which costs a tenth of the CPU.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sada_cli import run_sada

ROOT = Path(__file__).resolve().parent.parent
SADA = str(Path(sys.executable).parent / "sada")
B2B = "flows/b2b_supplier.yaml"

pytestmark = pytest.mark.slow


def _env(db: Path, extra: dict[str, str]) -> dict[str, str]:
    return {"SADA_DATABASE_URL": f"sqlite:///{db}", "NO_COLOR": "1", "COLUMNS": "200", **extra}


def sada_process(args: list[str], stdin: str, db: Path, **extra: str
                 ) -> subprocess.CompletedProcess[str]:
    """The installed `sada`, a process of its own, its stdin a pipe."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SADA_")},
           **_env(db, extra)}
    return subprocess.run([SADA, *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60, check=False)


def sada(args: list[str], stdin: str, db: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """The same command run in this process."""
    return run_sada(args, stdin=stdin, env=_env(db, extra), cwd=ROOT)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_piped_persian_run_reprompts_completes_and_stores(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "sada.db"  # the folder does not exist yet
    answers = ["۱", "۱۱", "۹", "تحویل به‌موقع", "۴", "۱، ۲", "۱", "۲"]
    result = sada_process(["preview", B2B, "--lang", "fa", "--as", "Sara"],
                          "\n".join(answers) + "\n", db)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "لطفاً یک عدد صحیح از ۰ تا ۱۰ بفرستید." in out  # the Persian re-prompt for ۱۱
    assert "سؤال ۱ از" in out and "Traceback" not in out + result.stderr
    stored = dict(rows(db, "select question_id, raw_text from answer"))
    assert stored["nps"] == "۹" and stored["stakeholder"] == "۱"
    values = {q: json.loads(str(v)) for q, v in rows(db, "select question_id, value from answer")}
    assert values["nps"] == 9 and values["priorities"] == ["quality", "on_time"]
    [(status, version_hash, content)] = rows(
        db, "select s.status, v.content_hash, v.content from survey_session s "
            "join flow_version v on v.id = s.flow_version_id")
    assert status == "completed"
    assert content == (ROOT / B2B).read_text(encoding="utf-8") and len(version_hash) == 64
    assert "Stored answers" in out
    # values as a person reads them: no Python quotes or brackets, ZWNJ kept, not escaped
    assert "│ buyer " in out and "│ quality, on_time " in out
    assert "'buyer'" not in out and "['" not in out and "\\u200c" not in out
    assert "تحویل به\u200cموقع" in out


def test_end_of_input_keeps_the_session_and_a_rerun_resumes(tmp_path: Path) -> None:
    db = tmp_path / "sada.db"
    first = sada(["preview", B2B, "--lang", "en", "--as", "Omar"], "2\n7\n", db)
    assert first.returncode == 0, first.stderr
    assert "Run the same command again" in first.stdout
    assert rows(db, "select status, position from survey_session") == [("active", "nps_why")]
    second = sada(["preview", B2B, "--lang", "en", "--as", "Omar"],
                  "/skip\n3\n1,6\n2\n6\nToo many emails\n", db)
    assert second.returncode == 0, second.stderr
    assert "Welcome back" in second.stdout
    assert rows(db, "select count(*), min(status) from survey_session") == [(1, "completed")]
    stored = dict(rows(db, "select question_id, skipped from answer"))
    assert stored["nps_why"] == 1 and stored["nps"] == 0 and "ces_why" in stored


def test_arabic_digits_and_back(tmp_path: Path) -> None:
    db = tmp_path / "sada.db"
    result = sada(["preview", B2B, "--lang", "ar", "--as", "Huda"],
                  "٣\n/back\n٣\n١٠\n/skip\n٥\n١\n١\n١\n١\n", db)
    assert result.returncode == 0, result.stderr
    assert "إجابتكم السابقة" in result.stdout
    [(value,)] = rows(db, "select value from answer where question_id = 'nps'")
    assert json.loads(str(value)) == 10


def test_bad_invocations_are_one_line_errors(tmp_path: Path) -> None:
    db = tmp_path / "sada.db"
    missing = sada(["preview", "flows/nope.yaml"], "", db)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    wrong_lang = sada(["preview", B2B, "--lang", "de"], "", db)
    assert wrong_lang.returncode == 2 and "ar, fa or en" in wrong_lang.stderr
    bad_url = run_sada(["preview", B2B], env={"SADA_DATABASE_URL": "mysql://x"},
                       keep_sada_env=True, cwd=ROOT)
    assert bad_url.returncode == 2 and "Traceback" not in bad_url.stderr  # a bad setting


def test_every_subcommand_has_help() -> None:
    for args in (["--help"], ["flows", "--help"], ["flows", "lint", "--help"],
                 ["preview", "--help"], ["db", "--help"], ["db", "upgrade", "--help"]):
        result = run_sada(args, keep_sada_env=True, cwd=ROOT)
        assert result.returncode == 0 and "Usage" in result.stdout, (args, result.stderr)


# --- what the README walks through --------------------------------------------------------


def test_a_detractor_in_preview_opens_a_case_staff_resolve(tmp_path: Path) -> None:
    db = tmp_path / "sada.db"
    result = sada(["preview", "b2b-supplier", "--lang", "en", "--as", "Omar"], "1\n3\n", db)
    assert result.returncode == 0, result.stderr  # no staff chats configured: no failure
    [(case_id, status, score)] = rows(db, "select id, status, score from \"case\"")
    assert (status, score) == ("open", 3)
    listed = sada(["cases", "list"], "", db)
    assert listed.returncode == 0 and "Omar" in listed.stdout and "nps 3" in listed.stdout
    resolved = sada(["cases", "resolve", str(case_id), "--note", "Called the buyer"], "", db)
    assert resolved.returncode == 0, resolved.stderr
    assert rows(db, "select status from \"case\"") == [("resolved",)]


def test_preview_alerts_queue_for_the_configured_staff_chats(tmp_path: Path) -> None:
    db = tmp_path / "sada.db"
    result = sada(["preview", "b2b-supplier", "--lang", "en", "--as", "Omar"], "1\n2\n", db,
                  SADA_ALERT_CHAT_IDS="4242")
    assert result.returncode == 0, result.stderr
    assert rows(db, "select kind, channel, address, status from outbox") == [
        ("alert", "telegram", "4242", "queued")]


def test_preview_completes_the_invitation_of_the_contact_answering(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from storage.db import Database
    from storage.invitations import create_invitation
    from storage.repo import Store

    db = tmp_path / "sada.db"

    async def seed() -> None:
        async with await Database.open(f"sqlite:///{db}") as database:
            contact = await Store(database).upsert_contact("console", "Sara", name="Sara")
            now = datetime.now(UTC)
            async with database.session() as s, s.begin():
                await create_invitation(s, contact_id=contact.id or 0, flow_id="b2b-supplier",
                                        context={}, status="sent", due_at=now, sent_at=now,
                                        now=now)

    asyncio.run(seed())
    answers = "1\n9\n/skip\n4\n1, 2\n1\n2\n"
    result = sada(["preview", "b2b-supplier", "--lang", "en", "--as", "Sara"], answers, db)
    assert result.returncode == 0, result.stderr
    [(session_id,)] = rows(db, "select id from survey_session where status = 'completed'")
    assert rows(db, "select status, session_id from invitation") == [("completed", session_id)]


def test_preview_takes_a_flow_id_and_the_flows_context(tmp_path: Path) -> None:
    db = tmp_path / "sada.db"
    result = sada(["preview", "post-support", "--lang", "en", "-c", "ticket=T-1042"], "", db)
    assert result.returncode == 0, result.stderr
    assert "support ticket T-1042." in result.stdout
    missing = sada(["preview", "post-support"], "", db)
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("flow post-support needs a value for ticket: add "
                                      "--context ticket=…")
    undeclared = sada(["preview", "b2b-supplier", "-c", "ticket=T-1"], "", db)
    assert undeclared.returncode == 2 and "its context keys: none" in undeclared.stderr
    unknown = sada(["preview", "no-such-flow"], "", db)
    assert unknown.returncode == 2 and "no flow 'no-such-flow'" in unknown.stderr
    assert "Traceback" not in missing.stderr + undeclared.stderr + unknown.stderr


def test_without_as_the_login_name_is_not_the_greeting(tmp_path: Path) -> None:
    db = tmp_path / "sada.db"
    result = sada(["preview", "b2b-supplier", "--lang", "en"], "1\n", db, LOGNAME="zzlogin",
                  USER="zzlogin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello, thank you") and "zzlogin" not in result.stdout
    again = sada(["preview", "b2b-supplier", "--lang", "en"], "", db, LOGNAME="zzlogin",
                 USER="zzlogin")
    assert "Welcome back" in again.stdout  # still resumed by the login


def test_stop_and_end_of_input_say_how_to_go_on_in_preview_in_the_readers_language(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sada.db"
    en = sada(["preview", "b2b-supplier", "--lang", "en", "--as", "A"], "1\n/stop\n", db)
    assert en.returncode == 0, en.stderr
    assert "/start" not in en.stdout and "run the same preview command again" in en.stdout
    fa = sada(["preview", "b2b-supplier", "--lang", "fa", "--as", "B"], "1\n/stop\n", db)
    assert "/start" not in fa.stdout and "همان دستور پیش‌نمایش را دوباره اجرا کنید" in fa.stdout
    ended = sada(["preview", "b2b-supplier", "--lang", "ar", "--as", "C"], "1\n", db)
    assert "انتهى الإدخال" in ended.stdout and "Input ended" not in ended.stdout
