"""`sada preview` end to end, as a subprocess fed through a pipe, on a real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SADA = str(Path(sys.executable).parent / "sada")
B2B = "flows/b2b_supplier.yaml"

pytestmark = pytest.mark.slow


def sada(args: list[str], stdin: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SADA_DATABASE_URL": f"sqlite:///{db}", "NO_COLOR": "1",
           "COLUMNS": "200"}
    return subprocess.run([SADA, *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60, check=False)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_piped_persian_run_reprompts_completes_and_stores(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "sada.db"  # the folder does not exist yet
    answers = ["۱", "۱۱", "۹", "تحویل به‌موقع", "۴", "۱، ۲", "۱", "۲"]
    result = sada(["preview", B2B, "--lang", "fa", "--as", "Sara"], "\n".join(answers) + "\n", db)
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
    bad_url = subprocess.run([SADA, "preview", B2B], input="", capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "SADA_DATABASE_URL": "mysql://x"},
                             timeout=60, check=False)
    assert bad_url.returncode == 1 and "Traceback" not in bad_url.stderr


def test_every_subcommand_has_help() -> None:
    for args in (["--help"], ["flows", "--help"], ["flows", "lint", "--help"],
                 ["preview", "--help"], ["db", "--help"], ["db", "upgrade", "--help"]):
        result = subprocess.run([SADA, *args], capture_output=True, text=True, cwd=ROOT,
                                timeout=60, check=False)
        assert result.returncode == 0 and "Usage" in result.stdout, (args, result.stderr)
