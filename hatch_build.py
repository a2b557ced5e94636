"""Build hook: the wheel carries every catalog of locales/ as bot/locales/, .po and .mo.

The .mo files are git-ignored, so they are compiled here, from the .po files of the tree
being built (a checkout or an unpacked sdist), into a temporary folder: a stale .mo left
in a checkout by `make i18n` never reaches a wheel.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE_DIR = "bot/locales"


class CatalogBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":  # the checkout's own locales/ is found at run time
            return
        source = Path(self.root) / "locales"
        catalogs = sorted(source.glob("*/LC_MESSAGES/*.po"))
        if not catalogs:
            raise RuntimeError(f"no catalogs under {source}: the wheel would speak only English")
        self._compiled = Path(tempfile.mkdtemp(prefix="sada-mo-"))
        for po in catalogs:
            relative = po.relative_to(source)
            mo = self._compiled / relative.with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            lang = relative.parts[0]
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=lang, domain=po.stem, abort_invalid=True)
            with mo.open("wb") as fh:
                write_mo(fh, catalog)
            build_data["force_include"][str(po)] = f"{PACKAGE_DIR}/{relative.as_posix()}"
            build_data["force_include"][str(mo)] = (
                f"{PACKAGE_DIR}/{relative.with_suffix('.mo').as_posix()}")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        compiled = getattr(self, "_compiled", None)
        if compiled is not None:
            shutil.rmtree(compiled, ignore_errors=True)
