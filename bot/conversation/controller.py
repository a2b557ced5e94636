"""Telegram behaviour, whatever the framework: commands, buttons, delivery and its errors.

`handle` turns one update into outgoing messages after committing what it changed, all of
it in one transaction; `process` also delivers them through a framework's Transport. Both
frameworks' shells only translate their types to and from events.py. Staff commands are
bot/conversation/staff.py's: this core only recognises staff and delegates.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.channels import text as render
from bot.channels.telegram.events import (
    AnswerPress,
    EditMessage,
    Out,
    SendDocument,
    SendPhoto,
    SendText,
    TgEvent,
    TgMedia,
    TgPress,
    TgText,
    cleaned,
)
from bot.channels.telegram.keyboards import (
    PREFIX,
    Signer,
    chosen,
    consent_keyboard,
    question_keyboard,
)
from bot.channels.telegram.lanes import ChatLanes, wait_out
from bot.conversation import staff
from bot.engine import inputs as i
from bot.engine.normalize import BIDI_CONTROLS
from bot.engine.prompts import Ask, AskConsent, Notice, Prompt
from bot.engine.step import ask, step
from bot.engine.words import is_stop
from bot.flow.loader import FlowError, LoadedFlow, load_flow
from bot.flow.model import LANGUAGES
from bot.followups.actions import record_feedback
from bot.followups.hooks import survey_hooks
from bot.i18n import Translator
from bot.messaging import links
from bot.messaging.transport import Blocked, Button, Refused, RetryAfter, Transient, Transport
from bot.staff_text import staff_line
from bot.survey import Conversation, SurveyService
from storage.invitations import adopt_chat, mark_started, on_opt_out, on_unreachable
from storage.models import Contact, SurveySession
from storage.outbox import enqueue
from storage.repo import DuplicateUpdate, Store

log = logging.getLogger(__name__)
CHANNEL = "telegram"
COMMANDS = ("start", "help", "language", "back", "skip", "stop", "export", "forget",
            *staff.COMMANDS)
LANGUAGE_LABELS = {"ar": "العربية", "fa": "فارسی", "en": "English"}
_NO_BIDI = str.maketrans("", "", BIDI_CONTROLS)
# A command as Telegram marks one: a slash, 1–32 letters, digits or _, maybe @bot, then
# whitespace or the end. "/etc/hosts is down" or "/ok" in Arabic letters are plain text.
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s+(.*))?", re.DOTALL)


def load_flows(folder: Path) -> dict[str, LoadedFlow]:
    """Every valid flow in the folder; a broken one is logged and left out, not fatal."""
    flows: dict[str, LoadedFlow] = {}
    for path in sorted(folder.glob("*.y*ml")):
        try:
            loaded = load_flow(path)
        except FlowError as exc:
            # One line per skipped file: its first problem, and where to see them all.
            first = exc.problems[0]
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            log.error("skipping %s:%d:%d: %s%s; `sada flows lint %s` lists every problem",
                      path, first.line, first.column, first.message, more, path)
            continue
        flows[loaded.flow.id] = loaded
    return flows


async def standalone_core(
    store: Store, *, flows_dir: Path, bot_username: str, admin_ids: frozenset[int],
    secret: str, alert_chats: list[int] | None = None,
) -> TelegramCore:
    """The core of `sada run`, where the bot is Sada alone: every private update gets an
    answer, none falls through to handlers that are not there."""
    return await TelegramCore.create(store, flows_dir=flows_dir, bot_username=bot_username,
                                     admin_ids=admin_ids, secret=secret,
                                     alert_chats=alert_chats, standalone=True)


@dataclass
class Reply:
    """The outgoing side of one update, built up while handling it."""

    chat_id: int
    lang: str
    outs: list[Out] = field(default_factory=list)

    @property
    def t(self) -> Translator:
        return Translator(self.lang)

    def say(self, text: str, keyboard: tuple[tuple[Button, ...], ...] | None = None) -> None:
        self.outs.append(SendText(self.chat_id, text, keyboard))


class TelegramCore:
    def __init__(
        self,
        store: Store,
        flows: dict[str, LoadedFlow],
        *,
        bot_username: str,
        admin_ids: frozenset[int],
        secret: str,
        service: SurveyService | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        standalone: bool = False,
        alert_chats: list[int] | None = None,
    ) -> None:
        """`standalone`: the bot is Sada alone (`sada run`), so every private update is
        Sada's to answer, even an unknown command, a photo or a button of another bot
        version. Off (a host bot includes Sada): those fall through to the host's
        handlers, and Sada takes only its commands, its buttons and the chats it is
        talking to (a survey open, or a link's code asked for)."""
        self.standalone = standalone
        self.store = store
        self.service = service or SurveyService(store)
        self.flows = flows
        self.bot_username = bot_username
        self.admin_ids = admin_ids
        self.signer = Signer(secret)
        self.source = f"{CHANNEL}:{bot_username}"
        self._sleep = sleep
        # Who hears that a flow cannot be shown (a refused question): the alert chats.
        self.alert_chats = list(admin_ids) if alert_chats is None else list(alert_chats)

    @classmethod
    async def create(
        cls, store: Store, *, flows_dir: Path, bot_username: str, admin_ids: frozenset[int],
        secret: str, alert_chats: list[int] | None = None, standalone: bool = False,
    ) -> TelegramCore:
        """The core with the follow-ups wired in: detractor answers open cases and alert
        `alert_chats` (default: the admins)."""
        chats = list(admin_ids) if alert_chats is None else alert_chats
        service = SurveyService(store, hooks=survey_hooks(chats))
        return cls(store, load_flows(flows_dir), bot_username=bot_username,
                   admin_ids=admin_ids, secret=secret, service=service, standalone=standalone,
                   alert_chats=chats)

    # --- which updates are ours ----------------------------------------------------------

    async def wants(self, event: TgEvent) -> bool:
        if self.standalone:
            return True
        if isinstance(event, TgPress):
            return event.data.startswith(PREFIX + ":")
        if isinstance(event, TgText):
            command = _command(event.text)
            if command is not None:
                return command[0] in COMMANDS
        contact = await self.store.find_contact(CHANNEL, str(event.chat_id))
        if contact is None or contact.id is None:
            return False
        if isinstance(event, TgText) and is_stop(event.text):
            return True
        if await self.store.latest_open_session(contact.id) is not None:
            return True
        return isinstance(event, TgText) and await links.awaiting_code(
            self.store, chat_id=event.chat_id, now=self.service.clock()) is not None

    # --- one update ----------------------------------------------------------------------

    async def process(self, event: TgEvent, transport: Transport) -> None:
        """Handle and deliver; errors are logged, never raised into the framework. An update
        that failed still gets an answer (a button stops spinning, a message says to try
        again), so nobody waits on a bot that went quiet."""
        try:
            outs = await self.handle(event)
        except Exception:
            log.exception("update %s failed", event.update_id)
            outs = _apology(event)
        try:
            await self.deliver(outs, transport)
        except Exception:
            log.exception("update %s: delivery failed", event.update_id)

    async def handle(self, event: TgEvent) -> list[Out]:
        """Apply one update in one transaction (its de-duplication, the contact, the
        session's state and answers, the step hooks, an opt-out, an erasure) and return
        what to send, once that transaction has committed. A redelivered update changes
        nothing and gets nothing; one that fails leaves nothing behind, so its
        redelivery is applied in full."""
        event = cleaned(event)
        try:
            async with self.store.transaction() as tx:
                await tx.claim_update(self.source, event.update_id, now=self.service.clock())
                return await self._within(tx)._apply(event)
        except DuplicateUpdate:
            return []  # a redelivery: already applied, already answered

    def _within(self, tx: Store) -> TelegramCore:
        """This core with every read and write in `tx`, the update's transaction."""
        core = copy.copy(self)
        core.store, core.service = tx, self.service.using(tx)
        return core

    async def _apply(self, event: TgEvent) -> list[Out]:
        contact = await self._contact(event)
        reply = Reply(event.chat_id, contact.language or "en")
        if isinstance(event, TgPress):
            await self._press(event, contact, reply)
        elif isinstance(event, TgMedia):
            await self._media(event, contact, reply)
        else:
            await self._text(event, contact, reply)
        return reply.outs

    async def _contact(self, event: TgEvent) -> Contact:
        user = event.user
        name = " ".join(p for p in (user.first_name, user.last_name) if p) or None
        found = await self.store.find_contact(CHANNEL, str(event.chat_id))
        fields: dict[str, Any] = {"name": name, "first_name": user.first_name or None}
        if found is None:
            # Telegram's language is the phone's: a first guess, never over an explicit choice.
            code = (user.language_code or "").split("-")[0]
            fields["language"] = code if code in LANGUAGES else None
        if found is not None and found.unreachable:
            fields["unreachable"] = False  # they wrote to us: reachable again
        return await self.store.upsert_contact(CHANNEL, str(event.chat_id), **fields)

    # --- typed text and commands ---------------------------------------------------------

    async def _text(self, event: TgText, contact: Contact, reply: Reply) -> None:
        assert contact.id is not None
        command = _command(event.text)
        conversation = await self._open_conversation(contact)
        if conversation is not None:
            reply.lang = conversation.state.language
        if command is None:
            code = links.typed_code(event.text)
            if code is not None or conversation is None:
                # a personal link's code, asked for when the link was opened
                pending = await links.awaiting_code(self.store, chat_id=event.chat_id,
                                                    now=self.service.clock())
                if pending is not None and code is not None:
                    await self._check_code(pending.token, code, contact, reply)
                    return
                if pending is not None and conversation is None and not is_stop(event.text):
                    reply.say(_ask_code(reply.t))
                    return
            if conversation is None:
                if is_stop(event.text):
                    await self._opt_out(contact, reply)
                    return
                if await record_feedback(self.store.database, contact_id=contact.id,
                                         text=event.text, now=self.service.clock()):
                    # a reply to "here is what we did": kept against that action
                    reply.say(reply.t.gettext("Thank you! We have passed this on to the team."))
                else:
                    reply.say(reply.t.gettext("There is no survey open right now. "
                                              "Send /start to see the surveys you can take."))
                return
            if not self._was_shown(conversation):
                # The question was committed but never reached the person (a crash between
                # commit and send): show it, rather than take this text as its answer.
                self._show(conversation, [ask(conversation.flow, conversation.state)], reply)
                return
            await self._step(conversation, i.Reply(event.text), reply)
            return
        name, argument = command
        if name == "start":
            await self._start(contact, argument, conversation, reply)
        elif name in ("back", "skip") and conversation is not None:
            await self._step(conversation, i.Back() if name == "back" else i.Skip(), reply)
        elif name == "stop":
            if conversation is not None:
                await self._step(conversation, i.Stop(), reply)
            else:
                await self._opt_out(contact, reply)
        elif name == "language":
            self._language_menu(reply)
        elif name == "export":
            document = await self.store.export_contact(contact.id)
            content = json.dumps(document, ensure_ascii=False, indent=2).encode()
            reply.outs.append(SendDocument(event.chat_id, "sada-my-data.json", content,
                                           reply.t.gettext("Everything we store about you.")))
        elif name == "forget":
            buttons = (Button(reply.t.gettext("Yes, erase my data"), f"{PREFIX}:x:yes"),
                       Button(reply.t.gettext("No, keep it"), f"{PREFIX}:x:no"))
            reply.say(reply.t.gettext("Erase everything we store about you, including your "
                                      "answers? This cannot be undone."), (buttons,))
        elif name in staff.COMMANDS:
            await self._staff_command(event, name, argument, reply)
        elif name not in COMMANDS:
            reply.say(reply.t.gettext("I do not know the command {command}. Send /help to see "
                                      "the commands I understand.", command=f"/{name}"))
            if conversation is not None:
                self._show_current(conversation, reply)  # what is expected instead
        else:  # help, or back/skip with no survey open
            reply.say(self._help(reply.t))

    async def _start(
        self, contact: Contact, token: str, conversation: Conversation | None, reply: Reply,
    ) -> None:
        assert contact.id is not None
        if contact.opted_out:  # /start opts back in
            await self.store.set_contact_flags(contact.id, opted_out=False)
        if token:
            conversation = await self._open_link(contact, token, reply)
            if conversation is None:
                return  # refused, or its code asked for: the reply says which
        if conversation is None:
            # a survey left with /stop continues where it stopped
            assert contact.id is not None  # stored, or adopted from a stored one
            stopped = await self.store.latest_open_session(contact.id, ("stopped", "declined"))
            if stopped is not None:
                conversation = await self.service.resume(stopped)
        if conversation is None:
            self._public_menu(reply)
            return
        reply.lang = conversation.state.language
        await self._step(conversation, i.Start(), reply)

    async def _open_link(
        self, contact: Contact, token: str, reply: Reply, *,
        code_given: bool = False,
    ) -> Conversation | None:
        """The session a deep link opens, or None with the reason in `reply`. A personal
        link for a contact without a chat makes this chat that contact, after its code when
        it has one (`code_given`: just checked)."""
        link = await self.store.get_link(token) if links.is_token(token) else None
        if link is None or link.flow_id not in self.flows:
            reply.say(reply.t.gettext("This link is not valid any more. Please ask the "
                                      "person who sent it for a new one."))
            return None
        if link.contact_id is not None and link.contact_id != contact.id:
            if link.code_hash is not None and not code_given and await self._adoptable(
                    link.contact_id):
                # Nothing of the contact (name, context, survey) is shown before the code.
                asked = await links.ask_code(self.store, token, chat_id=reply.chat_id,
                                             now=self.service.clock())
                reply.say(_ask_code(reply.t) if asked else _locked(reply.t))
                return None
            adopted = await self._adopt(link.contact_id, contact)
            if adopted is None:
                reply.say(reply.t.gettext("This link was made for someone else. Please "
                                          "ask the person who sent it for your own link."))
                return None
            contact = adopted
        conversation = await self.service.open(
            contact, self.flows[link.flow_id], context=link.context)
        async with self.store.database.session() as s, s.begin():
            await mark_started(s, token=token, session_id=conversation.session_id,
                               now=self.service.clock())
        return conversation

    async def _check_code(
        self, token: str, code: str, contact: Contact, reply: Reply
    ) -> None:
        """A code typed after opening a `--confirm` link: right, the link opens as if the
        chat were the contact's already; wrong, a try is counted and nothing is shown."""
        left = await links.try_code(self.store, token, code, chat_id=reply.chat_id)
        if left is not None:
            reply.say(reply.t.ngettext("That code is not right. You have {n} more try.",
                                       "That code is not right. You have {n} more tries.",
                                       left) if left else _locked(reply.t))
            return
        conversation = await self._open_link(contact, token, reply, code_given=True)
        if conversation is None:
            return
        reply.lang = conversation.state.language
        await self._step(conversation, i.Start(), reply)

    # --- what Sada cannot read ------------------------------------------------------------

    async def _media(self, event: TgMedia, contact: Contact, reply: Reply) -> None:
        """A photo, sticker, voice message …: no answer, but a reply saying what is."""
        conversation = await self._open_conversation(contact)
        if conversation is not None:
            reply.lang = conversation.state.language
        if conversation is None or not self._current_prompts(conversation):
            reply.say(reply.t.gettext("I can only read typed text and buttons, not photos, "
                                      "stickers, voice messages or files. Send /start to see "
                                      "the surveys you can take."))
            return
        reply.say(reply.t.gettext("I can only read typed text and buttons, not photos, "
                                  "stickers, voice messages or files. Please answer the "
                                  "question below."))
        self._show_current(conversation, reply)

    def _current_prompts(self, conversation: Conversation) -> list[Prompt]:
        """What the person is being asked right now, to show again: the question, or the
        consent; nothing for a session not started yet."""
        state = conversation.state
        if state.status == "consent":
            # the engine's own consent prompt: Start leaves a consent state as it is
            return [p for p in step(conversation.flow, state, i.Start())[1]
                    if isinstance(p, AskConsent)]
        if state.status == "active" and state.current is not None:
            return [ask(conversation.flow, state)]
        return []

    def _show_current(self, conversation: Conversation, reply: Reply) -> None:
        self._show(conversation, self._current_prompts(conversation), reply)

    # --- buttons -------------------------------------------------------------------------

    async def _press(self, event: TgPress, contact: Contact, reply: Reply) -> None:
        assert contact.id is not None
        data = event.data
        if not data.startswith(PREFIX + ":"):
            # Another bot's or an old version's button: answered, or it spins for a minute.
            await self._refuse(event, reply, "unknown_button")
            return
        conversation = await self._open_conversation(contact)
        if conversation is not None:
            reply.lang = conversation.state.language
        if data.startswith(f"{PREFIX}:l:"):
            await self._choose_language(data.rsplit(":", 1)[1], contact, conversation, reply,
                                        event)
            return
        if data.startswith(f"{PREFIX}:g:"):  # an invitation's or reminder's button
            reply.outs.append(AnswerPress(event.callback_id))
            await self._start(contact, data.removeprefix(f"{PREFIX}:g:"), conversation, reply)
            return
        if data.startswith(f"{PREFIX}:f:"):
            loaded = self.flows.get(data.rsplit(":", 1)[1])
            if loaded is None or not loaded.flow.public:
                await self._refuse(event, reply, "unknown_button")
                return
            reply.outs.append(AnswerPress(event.callback_id))
            conversation = await self.service.open(contact, loaded)
            reply.lang = conversation.state.language
            await self._step(conversation, i.Start(), reply)
            return
        if data in (f"{PREFIX}:x:yes", f"{PREFIX}:x:no"):
            await self._forget(data.endswith("yes"), contact, reply, event)
            return
        if data == f"{PREFIX}:noop":
            reply.outs.append(AnswerPress(event.callback_id))
            return
        press = self.signer.verify(event.chat_id, data)
        if press is None:
            await self._refuse(event, reply, "unknown_button")
            return
        if press.kind == "c" and conversation is not None and \
                press.session_id == conversation.session_id and \
                conversation.state.status == "consent":
            reply.outs.append(AnswerPress(event.callback_id))
            await self._step(conversation, i.Pick("consent", press.value), reply,
                             message_id=event.message_id)
            return
        ids = [] if conversation is None else [q.id for q in conversation.flow.questions]
        if (conversation is None or press.session_id != conversation.session_id
                or conversation.state.current is None
                or press.question != ids.index(conversation.state.current)):
            await self._refuse(event, reply, "stale_button")
            return
        qid = conversation.state.current
        current = conversation.flow.question(qid)
        engine_input: i.Input
        if press.kind == "a":
            value = press.value
            index = _index(value) if current.type == "choice" else None
            if index is not None:
                options = getattr(current, "options", [])
                value = options[index].id if index < len(options) else "?"
            engine_input = i.Pick(qid, value)
        elif press.kind == "t":
            options = getattr(current, "options", [])
            index = _index(press.value)
            engine_input = i.Toggle(qid, options[index].id if index is not None and
                                    index < len(options) else "?")
        elif press.kind == "d":
            engine_input = i.Submit(qid)
        elif press.kind == "b":
            engine_input = i.Back()
        else:
            engine_input = i.Skip()
        reply.outs.append(AnswerPress(event.callback_id))
        await self._step(conversation, engine_input, reply, message_id=event.message_id)

    async def _refuse(self, event: TgPress, reply: Reply, key: str) -> None:
        reply.outs.append(AnswerPress(event.callback_id, render.notice(Notice(key), reply.t)))

    async def _choose_language(
        self, lang: str, contact: Contact, conversation: Conversation | None, reply: Reply,
        event: TgPress,
    ) -> None:
        assert contact.id is not None
        reply.outs.append(AnswerPress(event.callback_id))
        if lang not in LANGUAGES:
            return
        await self.store.set_contact_flags(contact.id, language=lang)
        if conversation is not None and lang in conversation.flow.languages:
            reply.lang = lang
            await self._step(conversation, i.SetLanguage(lang), reply)
            return
        reply.lang = lang
        reply.say(render.notice(Notice("language_changed"), reply.t))

    async def _forget(
        self, confirmed: bool, contact: Contact, reply: Reply, event: TgPress,
    ) -> None:
        assert contact.id is not None
        reply.outs.append(AnswerPress(event.callback_id))
        if event.message_id is not None:
            reply.outs.append(EditMessage(event.chat_id, event.message_id, keyboard=None))
        if not confirmed:
            reply.say(reply.t.gettext("Nothing was erased."))
            return
        await self.store.forget_contact(contact.id)
        reply.say(reply.t.gettext("Done: everything we stored about you has been erased."))

    # --- running the engine --------------------------------------------------------------

    async def _step(
        self,
        conversation: Conversation,
        event: i.Input,
        reply: Reply,
        *,
        message_id: int | None = None,
    ) -> None:
        before = conversation.state
        prompts = await self.service.handle(conversation, event)
        after = conversation.state
        reply.lang = after.language
        # The answered question's keyboard now shows the choice: no stale buttons remain.
        old_message = conversation.prompt_message_id
        if old_message is None:
            old_message = message_id
        answered = before.current is not None and before.current in after.answers and (
            before.current != after.current)
        if old_message is not None and (answered or after.status != before.status):
            label = after.answers[before.current].raw if answered and before.current else None
            keyboard = chosen(label) if label else None
            reply.outs.append(EditMessage(reply.chat_id, old_message, keyboard=keyboard))
        elif old_message is not None and isinstance(event, i.Back | i.SetLanguage):
            reply.outs.append(EditMessage(reply.chat_id, old_message, keyboard=None))
        if isinstance(event, i.Toggle) and prompts and isinstance(prompts[-1], Ask) and \
                old_message is not None:
            # ticking an option redraws the same message, not a new one
            ask_ = prompts[-1]
            t = Translator(after.language)
            index = [q.id for q in conversation.flow.questions].index(ask_.question_id)
            reply.outs.append(EditMessage(
                reply.chat_id, old_message, render.question(ask_, t, typed=False),
                question_keyboard(ask_, t, self.signer, reply.chat_id, conversation.session_id,
                                  index)))
            return
        self._show(conversation, prompts, reply)

    def _show(self, conversation: Conversation, prompts: list[Prompt], reply: Reply) -> None:
        t = Translator(conversation.state.language)
        ids = [q.id for q in conversation.flow.questions]
        for prompt in prompts:
            if isinstance(prompt, Ask):
                keyboard = question_keyboard(prompt, t, self.signer, reply.chat_id,
                                             conversation.session_id,
                                             ids.index(prompt.question_id))
                reply.outs.append(SendText(reply.chat_id, render.question(prompt, t, typed=False),
                                           keyboard, conversation.session_id, prompt.question_id))
            elif isinstance(prompt, AskConsent):
                keyboard = consent_keyboard(t, self.signer, reply.chat_id, conversation.session_id)
                reply.outs.append(SendText(reply.chat_id, render.prompt(prompt, t, typed=False),
                                           keyboard))
            else:
                reply.say(render.prompt(prompt, t, typed=False))

    async def _open_conversation(self, contact: Contact) -> Conversation | None:
        assert contact.id is not None
        session = await self.store.latest_open_session(contact.id)
        if session is None:
            return None
        return await self.service.resume(session)

    @staticmethod
    def _was_shown(conversation: Conversation) -> bool:
        current = conversation.state.current
        if current is None or conversation.state.status != "active":
            return True
        return conversation.shown == current

    async def _adoptable(self, invited_id: int) -> bool:
        """Whether a chat could still become this contact (adopt_chat takes only contacts
        without a chat): else its link is someone else's, and no code is asked for."""
        invited = await self.store.get_contact(invited_id)
        return invited is not None and invited.channel == "external"

    async def _adopt(self, invited_id: int, chat_contact: Contact) -> Contact | None:
        """An invited contact without a chat opens their personal link: this chat is them."""
        assert chat_contact.id is not None
        async with self.store.database.session() as s, s.begin():
            adopted = await adopt_chat(s, contact_id=invited_id, chat_contact_id=chat_contact.id,
                                       now=self.service.clock())
        if not adopted:
            return None
        return await self.store.get_contact(invited_id)

    async def _opt_out(self, contact: Contact, reply: Reply) -> None:
        assert contact.id is not None
        await self.store.set_contact_flags(contact.id, opted_out=True)
        async with self.store.database.session() as s, s.begin():
            await on_opt_out(s, contact_id=contact.id, now=self.service.clock())
        # What reaches the person only after the update's transaction commits: a crash
        # before it leaves them opted in, and the redelivered /stop is applied anew.
        reply.say(render.notice(Notice("stopped"), reply.t))

    # --- menus and staff -----------------------------------------------------------------

    def _language_menu(self, reply: Reply) -> None:
        row = tuple(Button(LANGUAGE_LABELS[c], f"{PREFIX}:l:{c}") for c in LANGUAGES)
        reply.say(reply.t.gettext("Choose your language:"), (row,))

    def _public_menu(self, reply: Reply) -> None:
        public = [f for f in self.flows.values() if f.flow.public]
        if not public:
            reply.say(reply.t.gettext("Hello! There is no survey for you right now. "
                                      "Thank you for stopping by."))
            return
        rows = tuple((Button(_title(f, reply.lang), f"{PREFIX}:f:{f.flow.id}"),) for f in public)
        reply.say(reply.t.gettext("Hello! Which survey would you like to take?"), rows)

    def _help(self, t: Translator) -> str:
        return help_text(t)

    async def _staff_command(
        self, event: TgText, name: str, argument: str, reply: Reply
    ) -> None:
        """A staff command: staff.py's to answer, for the admins only."""
        if event.user.id in self.admin_ids:
            answer = await staff.run(name, argument, staff=f"{CHANNEL}:{event.user.id}",
                                     store=self.store, flows=self.flows, lang=reply.lang,
                                     now=self.service.clock())
        else:
            answer = staff.refused(reply.t)
        for out in answer:
            if isinstance(out, staff.Photo):
                reply.outs.append(SendPhoto(reply.chat_id, out.filename, out.content))
            else:
                reply.say(out.text)

    # --- delivery ------------------------------------------------------------------------

    async def deliver(self, outs: list[Out], transport: Transport) -> None:
        """Send `outs` in order. A chat that blocked the bot gets nothing more. A message
        Telegram refuses (too long, say) is never tried again and never leaves the person
        without a reply: it is logged as an error and a one-line apology goes instead."""
        blocked: set[int] = set()
        reached: set[int] = set()  # chats that got a message
        unanswered: set[int] = set()  # chats a message was refused to
        for out in outs:
            chat = getattr(out, "chat_id", None)
            if chat in blocked:
                continue
            try:
                result = await self._with_retries(out, transport)
            except Blocked:
                blocked.add(chat)  # type: ignore[arg-type]
                await self._unreachable(chat)
                continue
            except Refused as exc:
                if isinstance(out, SendText) and out.session_id is not None:
                    if await self._question_refused(out, exc, transport):
                        reached.add(out.chat_id)
                elif isinstance(out, SendText | SendPhoto | SendDocument):
                    log.error("Telegram refused a %s to chat %s: %s", type(out).__name__,
                              out.chat_id, exc)
                    unanswered.add(out.chat_id)
                else:  # an edit or a button's answer: the message itself is there
                    log.warning("could not deliver %s: %s", type(out).__name__, exc)
                continue
            except Transient as exc:
                # Not sent (or not known to be): a question stays unshown, and is shown
                # again on the person's next message or the next start.
                log.warning("could not deliver %s: %s", type(out).__name__, exc)
                continue
            if isinstance(out, SendText | SendPhoto | SendDocument):
                reached.add(out.chat_id)
            if isinstance(out, SendText) and out.session_id is not None:
                await self.store.mark_shown(out.session_id, out.question_id, result)
        for chat in unanswered - reached - blocked:
            await self._tell_staff("reply", "Telegram refused one of Sada's replies (see the "
                                   "log for which); the person got an apology instead.")
            contact = await self.store.find_contact(CHANNEL, str(chat))
            t = Translator(contact.language if contact and contact.language else "en")
            await self._apologise(chat, t.gettext(
                "Sorry, our reply could not be shown; the survey team has been told."),
                transport)

    async def _question_refused(self, out: SendText, exc: Refused, transport: Transport) -> bool:
        """Telegram will not show this question (400: too long, a bad button …), however often
        it is sent. Mark it shown, so that neither the next start (resume_pending) nor the
        person's next message sends it again, tell the operators, and tell the person how to
        go on. True when the apology reached them."""
        assert out.session_id is not None
        session = await self.store.get_session(out.session_id)
        flow = session.flow_id if session else "?"
        log.error("Telegram refused question %s of flow %s (session %s, chat %s): %s; the "
                  "respondent was told it could not be shown: shorten it (sada flows lint)",
                  out.question_id, flow, out.session_id, out.chat_id, exc)
        await self.store.mark_shown(out.session_id, out.question_id, None)
        await self._tell_staff(
            f"{flow}:{out.question_id}",
            f"Telegram refused question {out.question_id} of flow {flow}: {staff_line(str(exc))}."
            " Respondents see an apology instead; fix the flow (sada flows lint) and restart "
            "the bot.")
        t = Translator(session.language if session else "en")
        return await self._apologise(out.chat_id, t.gettext(
            "Sorry, this question could not be shown; the survey team has been told. "
            "Send /skip to go on or /stop to end the survey."), transport)

    async def _tell_staff(self, what: str, text: str) -> None:
        """An alert to the staff chats through the outbox, once a day per `what`: every
        respondent meets the same refusal, and staff need one notice, not hundreds."""
        now = self.service.clock()
        async with self.store.database.session() as s, s.begin():
            for chat in dict.fromkeys(self.alert_chats):
                await enqueue(s, key=f"refused:{what}:{now:%Y-%m-%d}:{chat}",
                              kind="alert", channel="telegram", chat_id=chat,
                              contact_id=None, text=text,
                              keyboard=None, due_at=now, now=now)

    async def _apologise(self, chat: int, text: str, transport: Transport) -> bool:
        try:
            await self._with_retries(SendText(chat, text), transport)
        except (Blocked, Refused, Transient) as exc:
            log.warning("could not send the apology to chat %s: %s", chat, exc)
            return False
        return True

    async def _with_retries(self, out: Out, transport: Transport) -> int | None:
        """Send, waiting out 429s and backing off after network errors. Waiting happens in
        the chat's lane (lanes.py): other people's updates go on meanwhile, and a stop cuts
        the wait short (Transient: not sent)."""
        delay = 0.5
        for attempt in range(6):
            try:
                return await _send(out, transport)
            except RetryAfter as exc:
                if not await wait_out(exc.seconds, self._sleep):
                    raise Transient("stopping: not waiting out a rate limit") from exc
            except Transient:
                if attempt == 5 or not await wait_out(delay, self._sleep):
                    raise
                delay = min(delay * 2, 30)
        raise Transient("gave up after repeated rate limits")

    async def _unreachable(self, chat_id: int | None) -> None:
        if chat_id is None:
            return
        contact = await self.store.find_contact(CHANNEL, str(chat_id))
        if contact is not None and contact.id is not None:
            async with self.store.database.session() as s, s.begin():
                await on_unreachable(s, contact_id=contact.id, now=self.service.clock())

    async def resume_pending(self, transport: Transport) -> int:
        """After a restart: show every question that was committed but never delivered.

        Chats side by side in lanes, as updates are: a rate limit for one chat delays only
        that chat, not the start for everyone."""
        lanes = ChatLanes()
        shown = [
            lanes.submit(int(contact.external_id),
                         functools.partial(self._show_again, session, contact, transport))
            for session, contact in await self.store.undelivered_sessions(CHANNEL)
        ]
        return sum(await asyncio.gather(*shown))

    async def _show_again(
        self, session: SurveySession, contact: Contact, transport: Transport
    ) -> None:
        conversation = await self.service.resume(session)
        reply = Reply(int(contact.external_id), conversation.state.language)
        self._show(conversation, [ask(conversation.flow, conversation.state)], reply)
        await self.deliver(reply.outs, transport)


async def _send(out: Out, transport: Transport) -> int | None:
    if isinstance(out, SendText):
        return await transport.send_text(out.chat_id, out.text, out.keyboard)
    if isinstance(out, EditMessage):
        await transport.edit(out.chat_id, out.message_id, out.text, out.keyboard)
    elif isinstance(out, AnswerPress):
        await transport.answer_press(out.callback_id, out.text)
    elif isinstance(out, SendPhoto):
        await transport.send_photo(out.chat_id, out.filename, out.content, out.caption)
    else:
        await transport.send_document(out.chat_id, out.filename, out.content, out.caption)
    return None


def help_text(t: Translator) -> str:
    """/help. Its lines start with a command: each gets RLM, or in ar and fa the line would
    take the command's left-to-right direction."""
    return t.lines(t.gettext(
        "I ask short surveys, one question at a time. Tap a button or type your answer.\n"
        "/back: the previous question\n/skip: skip an optional question\n"
        "/language: change the language\n/stop: no more surveys or reminders\n"
        "/export: your data\n/forget: erase your data"))


def _command(text: str) -> tuple[str, str] | None:
    """"/start abc" → ("start", "abc"); "/start@sada_bot" works too; plain text → None.

    Bidi marks are dropped first: a command copied from our right-to-left messages comes
    with the isolates we put around it."""
    match = _COMMAND.fullmatch(text.translate(_NO_BIDI).strip())
    if match is None:
        return None
    return match[1].lower(), (match[2] or "").strip()


def _index(value: str) -> int | None:
    """A button's option index (ASCII digits, as keyboards.py writes them), or None."""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 4 else None


def _ask_code(t: Translator) -> str:
    return t.gettext("To open this link, please send the confirmation code you were given "
                     "with it.")


def _locked(t: Translator) -> str:
    return t.gettext("This link is locked after too many wrong codes. Please ask the person "
                     "who sent it for a new one.")


def _apology(event: TgEvent) -> list[Out]:
    """The answer to an update that failed: in the phone's language, as nothing else is
    known by then."""
    code = (event.user.language_code or "").split("-")[0]
    text = Translator(code if code in LANGUAGES else "en").gettext(
        "Sorry, something unexpected happened. Please try again.")
    if isinstance(event, TgPress):
        return [AnswerPress(event.callback_id, text)]
    return [SendText(event.chat_id, text)]


def _title(loaded: LoadedFlow, lang: str) -> str:
    title = loaded.flow.title
    return title.get(lang) or title.get(loaded.flow.default_language) or loaded.flow.id  # type: ignore[call-overload]
