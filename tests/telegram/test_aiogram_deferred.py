"""aiogram, imported after bot.channels.telegram, builds its models when first used
(bot/channels/telegram/aiogram_deferred.py): none at import; the aiogram shell builds those a
survey uses, and they are the same as aiogram's own import builds."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USED = ["types.Update", "types.InlineKeyboardMarkup",
        "types.MenuButtonDefault", "methods.SendMessage",
        "methods.EditMessageReplyMarkup", "methods.AnswerCallbackQuery", "methods.GetUpdates",
        "methods.DeleteWebhook", "methods.GetMe",
        "methods.SetChatMenuButton"]
# (those whose JSON schema pydantic can write: not the ones that take an InputFile; the
# update holds the message, the callback query and the rest of the types it can carry)
# Run in a new interpreter: `deferred` says whether Sada's finder is in place before the
# first import of aiogram. Prints what was built by the import, then each model's schema.
SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")  # JSON schema's note on aiogram's Default() values
if sys.argv[1] == "deferred":
    import bot.channels.telegram
import aiogram
from aiogram import methods, types
built = sorted(name for module in (types, methods) for name in module.__all__
               if getattr(getattr(module, name), "__pydantic_complete__", False))
if sys.argv[1] == "deferred":  # the shell builds what a survey uses before it is ready
    import bot.channels.telegram.aiogram_shell
    assert types.Update.__pydantic_complete__ and methods.SendMessage.__pydantic_complete__
update = types.Update.model_validate({"update_id": 7, "callback_query": {
    "id": "1", "from": {"id": 5, "is_bot": False, "first_name": "Sara"}, "chat_instance": "c",
    "data": "sada:a:1", "message": {"message_id": 3, "date": 1764547200,
    "chat": {"id": 5, "type": "private"}, "text": "۹",
    "reply_markup": {"inline_keyboard": [[{"text": "۹", "callback_data": "sada:a:1"}]]}}}})
markup = types.InlineKeyboardMarkup(inline_keyboard=[[types.InlineKeyboardButton(
    text="۹", callback_data="sada:a:1")]])
sent = methods.SendMessage(chat_id=5, text="سلام", reply_markup=markup)
print(json.dumps({
    "built": built,
    "pressed": update.callback_query.message.reply_markup.inline_keyboard[0][0].callback_data,
    "sent": sent.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
    "schemas": {name: getattr({"types": types, "methods": methods}[name.split(".")[0]],
                              name.split(".")[1]).model_json_schema()
                for name in sys.argv[2:]},
}, sort_keys=True, default=str))
"""


def _run(how: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, how, *USED], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_aiogram_builds_nothing_at_import_and_then_what_its_own_import_builds() -> None:
    with ThreadPoolExecutor(2) as pool:
        deferred, stock = pool.map(_run, ["deferred", "stock"])
    assert deferred["built"] == []
    assert len(stock["built"]) > 500  # type: ignore[arg-type]  # what the finder spares
    assert deferred["pressed"] == stock["pressed"] == "sada:a:1"
    assert deferred["sent"] == stock["sent"]
    assert deferred["schemas"] == stock["schemas"]
