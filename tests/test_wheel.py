"""The built wheel, installed into a clean virtual environment, speaks Persian and Arabic.

The project's dependencies come from the test's own environment through a .pth file, but
not the checkout: a .pth file inside a folder added that way is not processed, so the
editable install of sada there stays invisible, and the wheel's own copy is the one run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.engine.normalize import local_digits

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = "Question {index} of {total}"

pytestmark = [pytest.mark.slow, pytest.mark.together]


def run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=120, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of a fresh venv holding only the wheel built from this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", base / "dist", ROOT])
    (wheel,) = (base / "dist").glob("sada-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for lang in ("ar", "fa", "en"):
        for suffix in ("po", "mo"):
            assert f"bot/locales/{lang}/LC_MESSAGES/sada.{suffix}" in names, sorted(names)

    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         wheel])
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    deps = sysconfig.get_paths()["purelib"]
    Path(site.stdout.strip(), "deps.pth").write_text(deps + "\n", encoding="utf-8")
    return venv / "bin"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working folder away from the checkout, with a copy of an example flow."""
    shutil.copy(ROOT / "flows" / "b2b_supplier.yaml", tmp_path)
    return tmp_path


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SADA_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200"}


def test_the_installed_package_is_the_wheel_not_the_checkout(
    installed: Path, outside: Path
) -> None:
    found = run([installed / "python", "-c",
                 "import bot, bot.i18n; print(bot.__file__); print(bot.i18n.LOCALES_DIR)"],
                cwd=outside, env=clean_env()).stdout.splitlines()
    package = installed.parent / "lib"
    assert all(Path(line).is_relative_to(package) for line in found), found
    assert found[1].endswith("/bot/locales")


@pytest.mark.parametrize("lang", ["fa", "ar"])
def test_preview_from_the_wheel_speaks_the_readers_language(
    installed: Path, outside: Path, lang: str
) -> None:
    lib = installed.parent / "lib"
    (catalog_file,) = lib.glob(f"python*/site-packages/bot/locales/{lang}/LC_MESSAGES/sada.po")
    with catalog_file.open("rb") as fh:
        progress = read_po(fh, locale=lang)[PROGRESS].string
    assert progress and progress != PROGRESS
    # the line as shown for question 1, up to its total: "سؤال ۱ از", "السؤال ١ من"
    expected = progress.split("{total}")[0].format(index=local_digits("1", lang)).strip()

    result = run([installed / "sada", "preview", "b2b_supplier.yaml", "--lang", lang,
                  "--as", "Reader", "--database-url", f"sqlite:///{outside / 'sada.db'}"],
                 input="", cwd=outside, env=clean_env())
    assert expected in result.stdout, result.stdout
    # the English fall-back shows the reader's digits: "Question ۱ of ۹"
    assert "Question" not in result.stdout and "Traceback" not in result.stderr
