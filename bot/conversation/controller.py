"""The conversation with one person, whatever the channel: commands, buttons, the survey
steps and their hooks, delivery and its errors.

A Controller serves one channel (its name is in every address it handles): `handle` turns
one inbound event into outgoing messages after committing what it changed, all of it in one
transaction; `process` also delivers them through the channel's Transport. A channel's
shell only translates its API's types to and from events.py. Staff commands are
bot/conversation/staff.py's: the controller only recognises staff and delegates.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import logs, metrics
from bot.channels import text as render
from bot.conversation import staff
from bot.conversation.events import (
    AnswerPress,
    EditMessage,
    Inbound,
    Media,
    Out,
    Pressed,
    SendDocument,
    SendPhoto,
    SendText,
    Typed,
    cleaned,
)
from bot.conversation.lanes import ChatLanes, wait_out
from bot.engine import inputs as i
from bot.engine.normalize import BIDI_CONTROLS, local_digits
from bot.engine.prompts import Ask, AskConsent, Notice, Prompt
from bot.engine.step import ask, step
from bot.engine.words import is_stop
from bot.flow.loader import FlowError, LoadedFlow, load_flow
from bot.flow.model import LANGUAGES
from bot.followups.actions import record_feedback
from bot.followups.hooks import survey_hooks
from bot.followups.shared_rate import CHAT_MARGIN
from bot.followups.shared_rate import installed as shared_limiter
from bot.i18n import Translator
from bot.messaging import links
from bot.messaging.capabilities import Capabilities
from bot.messaging.keyboards import (
    PREFIX,
    Signer,
    chosen,
    consent_keyboard,
    fitted,
    question_keyboard,
)
from bot.messaging.registry import CHANNELS
from bot.messaging.transport import (
    Blocked,
    Button,
    ChatRetryAfter,
    Keyboard,
    Refused,
    RetryAfter,
    Transient,
    Transport,
)
from bot.staff_text import staff_line
from bot.survey import Conversation, SurveyService
from storage.invitations import adopt_chat, mark_started, on_opt_out, on_unreachable
from storage.locks import lock_address, other_runs
from storage.models import Contact, SurveySession
from storage.outbox import enqueue
from storage.repo import DuplicateUpdate, Store

log = logging.getLogger(__name__)
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
COMMANDS = ("start", "help", "language", "back", "skip", "stop", "export", "forget",
            *staff.COMMANDS)
LANGUAGE_LABELS = {"ar": "العربية", "fa": "فارسی", "en": "English"}
_NO_BIDI = str.maketrans("", "", BIDI_CONTROLS)
# A command as Telegram marks one (and Sada reads one on every channel): a slash, 1–32
# letters, digits or _, maybe @bot, then whitespace or the end. "/etc/hosts is down" or
# "/ok" in Arabic letters are plain text.
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


async def standalone_controller(
    store: Store, *, channel: str, flows_dir: Path, bot_username: str,
    admin_ids: frozenset[str], secret: str, alert_to: Sequence[Address] | None = None,
) -> Controller:
    """The controller of `sada run`, where the bot is Sada alone: every private update gets
    an answer, none falls through to handlers that are not there."""
    return await Controller.create(store, channel=channel, flows_dir=flows_dir,
                                   bot_username=bot_username, admin_ids=admin_ids,
                                   secret=secret, alert_to=alert_to, standalone=True)


@dataclass
class Reply:
    """The outgoing side of one update, built up while handling it."""

    chat_id: str
    lang: str
    capabilities: Capabilities
    outs: list[Out] = field(default_factory=list)

    @property
    def t(self) -> Translator:
        return Translator(self.lang)

    def say(self, text: str, keyboard: Keyboard | None = None) -> None:
        """`text`, with `keyboard` where the channel can show it (menus say how to answer
        without one too)."""
        self.outs.append(SendText(self.chat_id, text, fitted(keyboard, self.capabilities,
                                                             menu=menu_label(self.t))))

    def edit(self, message_id: int, text: str | None = None,
             keyboard: Keyboard | None = None) -> bool:
        """Change a sent message, where the channel can: False when it cannot."""
        if not self.capabilities.editable:
            return False
        self.outs.append(EditMessage(self.chat_id, message_id, text,
                                     fitted(keyboard, self.capabilities,
                                            menu=menu_label(self.t))))
        return True


class Controller:
    def __init__(
        self,
        store: Store,
        flows: dict[str, LoadedFlow],
        *,
        channel: str,
        bot_username: str,
        admin_ids: frozenset[str],
        secret: str,
        service: SurveyService | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        standalone: bool = False,
        alert_to: Sequence[Address] | None = None,
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
        self.channel = channel
        declared = CHANNELS.get(channel)
        self.title, self.capabilities = declared.title, declared.capabilities
        self.notices = declared.notices
        # Update ids are counted per bot: two bots (or channels) may reuse each other's.
        self.source = f"{channel}:{bot_username}"
        self._sleep = sleep
        # Who hears that a flow cannot be shown (a refused question): the alert
        # destinations, on any channel; by default this channel's admins.
        self.alert_to = _alert_to(channel, admin_ids, alert_to)

    @classmethod
    async def create(
        cls, store: Store, *, channel: str, flows_dir: Path, bot_username: str,
        admin_ids: frozenset[str], secret: str, alert_to: Sequence[Address] | None = None,
        standalone: bool = False,
    ) -> Controller:
        """The controller with the follow-ups wired in: detractor answers open cases and
        alert `alert_to` (default: this channel's admins)."""
        destinations = _alert_to(channel, admin_ids, alert_to)
        service = SurveyService(store, hooks=survey_hooks(destinations))
        return cls(store, load_flows(flows_dir), channel=channel, bot_username=bot_username,
                   admin_ids=admin_ids, secret=secret, service=service, standalone=standalone,
                   alert_to=destinations)

    # --- which updates are ours ----------------------------------------------------------

    async def wants(self, event: Inbound) -> bool:
        if self.standalone:
            return True
        if isinstance(event, Pressed):
            return event.data.startswith(PREFIX + ":")
        if isinstance(event, Typed):
            command = _command(event.text)
            if command is not None:
                return command[0] in COMMANDS
        contact = await self.store.find_contact(self.channel, event.chat_id)
        if contact is None or contact.id is None:
            return False
        if isinstance(event, Typed) and is_stop(event.text):
            return True
        if await self.store.latest_open_session(contact.id) is not None:
            return True
        return isinstance(event, Typed) and await links.awaiting_code(
            self.store, chat=self._chat(event.chat_id), now=self.service.clock()) is not None

    # --- one update ----------------------------------------------------------------------

    @logs.scoped
    async def process(self, event: Inbound, transport: Transport) -> None:
        """Handle and deliver; errors are logged, never raised into the framework. An update
        that failed still gets an answer (a button stops spinning, a message says to try
        again), so nobody waits on a bot that went quiet."""
        started, outcome = time.perf_counter(), "ok"
        try:
            outs = await self.handle(event)
        except Exception:
            log.exception("update %s failed", event.update_id)
            outs, outcome = _apology(event), "failed"
        try:
            await self.deliver(outs, transport)
        except Exception:
            log.exception("update %s: delivery failed", event.update_id)
            outcome = "failed"
        metrics.handled(self.channel, outcome, started)

    async def handle(self, event: Inbound) -> list[Out]:
        """Apply one update in one transaction (its de-duplication, the contact, the
        session's state and answers, the step hooks, an opt-out, an erasure) and return
        what to send, once that transaction has committed. A redelivered update changes
        nothing and gets nothing; one that fails leaves nothing behind, so its
        redelivery is applied in full."""
        event = cleaned(event)
        logs.bind_event(self.channel, event.update_id)
        try:
            async with self.store.transaction() as tx:
                # First: an update of this person in another process is applied before or
                # after this one, never interleaved with it (PostgreSQL; see storage/locks).
                # With an update id, the lock is taken by the claim's statement.
                if event.update_id is not None:
                    await tx.claim_update(self.source, event.update_id,
                                          now=self.service.clock(),
                                          lock=(self.channel, event.chat_id))
                else:
                    await lock_address(tx.database, self.channel, event.chat_id)
                return await self._within(tx)._apply(event)
        except DuplicateUpdate:
            metrics.UPDATES_REDELIVERED.labels(self.channel).inc()
            return []  # a redelivery: already applied, already answered

    def _within(self, tx: Store) -> Controller:
        """This core with every read and write in `tx`, the update's transaction."""
        core = copy.copy(self)
        core.store, core.service = tx, self.service.using(tx)
        return core

    async def _apply(self, event: Inbound) -> list[Out]:
        contact = await self._contact(event)
        logs.bind(contact_id=contact.id)
        reply = Reply(event.chat_id, contact.language or "en", self.capabilities)
        if isinstance(event, Pressed):
            await self._press(event, contact, reply)
        elif isinstance(event, Media):
            await self._media(event, contact, reply)
        else:
            await self._text(event, contact, reply)
        return reply.outs

    async def _contact(self, event: Inbound) -> Contact:
        user = event.user
        name = " ".join(p for p in (user.first_name, user.last_name) if p) or None
        # The app's language is the phone's: a first guess for a new contact, never over an
        # explicit choice.
        code = (user.language_code or "").split("-")[0]
        # seen_at: they wrote from this address, so it is reachable, and the one they use now
        return await self.store.upsert_contact(
            self.channel, event.chat_id, seen_at=self.service.clock(),
            defaults={"language": code if code in LANGUAGES else None},
            name=name, first_name=user.first_name or None)

    # --- typed text and commands ---------------------------------------------------------

    async def _text(self, event: Typed, contact: Contact, reply: Reply) -> None:
        assert contact.id is not None
        command = _command(event.text)
        conversation = await self._open_conversation(contact)
        if conversation is not None:
            reply.lang = conversation.state.language
        if command is None:
            code = links.typed_code(event.text)
            if code is not None or conversation is None:
                # a personal link's code, asked for when the link was opened
                pending = await links.awaiting_code(self.store, chat=self._chat(event.chat_id),
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
            if argument.lower() in LANGUAGES:  # "/language fa": no menu needed
                await self._set_language(argument.lower(), contact, conversation, reply)
            else:
                self._language_menu(reply)
        elif name == "export":
            document = await self.store.export_contact(contact.id)
            content = json.dumps(document, ensure_ascii=False, indent=2).encode()
            reply.outs.append(SendDocument(event.chat_id, "sada-my-data.json", content,
                                           reply.t.gettext("Everything we store about you.")))
        elif name == "forget":
            await self._ask_forget(contact, argument, reply)
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
        public = self.flows.get(token)
        if public is not None and public.flow.public:  # "/start <flow id>": a public survey
            conversation = await self.service.open(contact, public)
        elif token:
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
                asked = await links.ask_code(self.store, token, chat=self._chat(reply.chat_id),
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
        left = await links.try_code(self.store, token, code, chat=self._chat(reply.chat_id))
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

    async def _media(self, event: Media, contact: Contact, reply: Reply) -> None:
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

    async def _press(self, event: Pressed, contact: Contact, reply: Reply) -> None:
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
            await self._forget_pressed(data.endswith("yes"), contact, reply, event)
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

    async def _refuse(self, event: Pressed, reply: Reply, key: str) -> None:
        reply.outs.append(AnswerPress(event.callback_id, self._notice(Notice(key), reply.t)))

    async def _choose_language(
        self, lang: str, contact: Contact, conversation: Conversation | None, reply: Reply,
        event: Pressed,
    ) -> None:
        reply.outs.append(AnswerPress(event.callback_id))
        await self._set_language(lang, contact, conversation, reply)

    async def _set_language(
        self, lang: str, contact: Contact, conversation: Conversation | None, reply: Reply,
    ) -> None:
        assert contact.id is not None
        if lang not in LANGUAGES:
            return
        await self.store.set_contact_flags(contact.id, language=lang)
        if conversation is not None and lang in conversation.flow.languages:
            reply.lang = lang
            await self._step(conversation, i.SetLanguage(lang), reply)
            return
        reply.lang = lang
        reply.say(self._notice(Notice("language_changed"), reply.t))

    async def _ask_forget(self, contact: Contact, argument: str, reply: Reply) -> None:
        """/forget asks first; where there are no buttons, "/forget yes" is the answer."""
        buttons = ((Button(reply.t.gettext("Yes, erase my data"), f"{PREFIX}:x:yes"),
                    Button(reply.t.gettext("No, keep it"), f"{PREFIX}:x:no")),)
        if fitted(buttons, reply.capabilities) is None:
            if argument.lower() == "yes":
                await self._forget(True, contact, reply)
                return
            reply.say(reply.t.gettext("Erase everything we store about you, including your "
                                      "answers? This cannot be undone. To erase it, send "
                                      "/forget yes"))
            return
        reply.say(reply.t.gettext("Erase everything we store about you, including your "
                                  "answers? This cannot be undone."), buttons)

    async def _forget_pressed(
        self, confirmed: bool, contact: Contact, reply: Reply, event: Pressed,
    ) -> None:
        reply.outs.append(AnswerPress(event.callback_id))
        if event.message_id is not None:
            reply.edit(event.message_id, keyboard=None)
        await self._forget(confirmed, contact, reply)

    async def _forget(self, confirmed: bool, contact: Contact, reply: Reply) -> None:
        assert contact.id is not None
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
        logs.bind(session_id=conversation.session_id)
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
        tidy = len(reply.outs)
        if old_message is not None and (answered or after.status != before.status):
            label = after.answers[before.current].raw if answered and before.current else None
            if label is not None and _NUMBER.fullmatch(label):
                # a pressed score is stored as its value: shown in the reader's digits
                label = local_digits(label, after.language)
            reply.edit(old_message, keyboard=chosen(label) if label else None)
        elif old_message is not None and isinstance(event, i.Back | i.SetLanguage):
            reply.edit(old_message, keyboard=None)
        if isinstance(event, i.Toggle) and prompts and isinstance(prompts[-1], Ask) and \
                old_message is not None:
            # ticking an option redraws the same message, not a new one
            ask_ = prompts[-1]
            t = Translator(after.language)
            index = [q.id for q in conversation.flow.questions].index(ask_.question_id)
            keyboard = fitted(question_keyboard(ask_, t, self.signer, reply.chat_id,
                                                conversation.session_id, index),
                              self.capabilities, menu=menu_label(t))
            if keyboard is not None and reply.edit(
                    old_message, render.question(ask_, t, typed=False), keyboard):
                return
        # The old keyboard's tidying goes after what the person waits for: with replies
        # paced per chat (several processes: bot/followups/shared_rate.py) the edit sent
        # first held the next question back by the chat's spacing, 1.25 s on Telegram. A
        # press on the old keyboard meanwhile is refused as stale.
        edits = reply.outs[tidy:]
        del reply.outs[tidy:]
        self._show(conversation, prompts, reply)
        reply.outs.extend(edits)

    def _show(self, conversation: Conversation, prompts: list[Prompt], reply: Reply) -> None:
        t = Translator(conversation.state.language)
        ids = [q.id for q in conversation.flow.questions]
        for prompt in prompts:
            # Buttons where the channel can show them all; else typed, with a hint.
            if isinstance(prompt, Ask):
                keyboard = fitted(question_keyboard(prompt, t, self.signer, reply.chat_id,
                                                    conversation.session_id,
                                                    ids.index(prompt.question_id)),
                                  self.capabilities, menu=menu_label(t))
                text = render.question(prompt, t, typed=keyboard is None)
                reply.outs.append(SendText(reply.chat_id, text, keyboard,
                                           conversation.session_id, prompt.question_id))
            elif isinstance(prompt, AskConsent):
                keyboard = fitted(consent_keyboard(t, self.signer, reply.chat_id,
                                                   conversation.session_id), self.capabilities)
                reply.outs.append(SendText(reply.chat_id,
                                           render.prompt(prompt, t, typed=keyboard is None),
                                           keyboard))
            elif isinstance(prompt, Notice):
                reply.say(t.lines(self._notice(prompt, t)))
            else:
                reply.say(render.prompt(prompt, t, typed=False))

    def _notice(self, notice: Notice, t: Translator) -> str:
        """A notice as this channel says it (bot.messaging.registry.Channel.notices)."""
        own = self.notices.get(notice.key)
        return t.gettext(own) if own is not None else render.notice(notice, t)

    async def _open_conversation(self, contact: Contact) -> Conversation | None:
        assert contact.id is not None
        session = await self.store.latest_open_session(contact.id)
        if session is None:
            return None
        logs.bind(session_id=session.id)
        return await self.service.resume(session)

    @property
    def _several(self) -> bool:
        """One person may be several chats here: a visitor id per browser on a page that
        only shows messages while open (the web chat), so their personal link opened in a
        second browser is still theirs."""
        return not self.capabilities.reaches_absent

    def _chat(self, address: str) -> str:
        """The chat as one name across channels (a Telegram and a Bale chat may share ids)."""
        return f"{self.channel}:{address}"

    @staticmethod
    def _was_shown(conversation: Conversation) -> bool:
        current = conversation.state.current
        if current is None or conversation.state.status != "active":
            return True
        return conversation.shown == current

    async def _adoptable(self, invited_id: int) -> bool:
        """Whether this chat could still become that contact (adopt_chat takes only contacts
        without an identity on this channel): else its link is someone else's, and no code
        is asked for."""
        return await self.store.adoptable(invited_id, self.channel, several=self._several)

    async def _adopt(self, invited_id: int, chat_contact: Contact) -> Contact | None:
        """An invited contact without a chat opens their personal link: this chat is them."""
        assert chat_contact.id is not None
        async with self.store.database.session() as s, s.begin():
            adopted = await adopt_chat(s, contact_id=invited_id, chat_contact_id=chat_contact.id,
                                       now=self.service.clock(),
                                       several=frozenset({self.channel} if self._several
                                                         else ()))
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
        reply.say(self._notice(Notice("stopped"), reply.t))

    # --- menus and staff -----------------------------------------------------------------

    def _language_menu(self, reply: Reply) -> None:
        row = tuple(Button(LANGUAGE_LABELS[c], f"{PREFIX}:l:{c}") for c in LANGUAGES)
        if fitted((row,), reply.capabilities) is not None:
            reply.say(reply.t.gettext("Choose your language:"), (row,))
            return
        # Without buttons: the command that picks each, a language's name beside it.
        t = reply.t
        lines = [t.isolate_ltr(f"/language {c}: {LANGUAGE_LABELS[c]}") for c in LANGUAGES]
        reply.say(t.lines("\n".join([t.gettext("Choose your language:"), *lines])))

    def _public_menu(self, reply: Reply) -> None:
        public = [f for f in self.flows.values() if f.flow.public]
        if not public:
            reply.say(reply.t.gettext("Hello! There is no survey for you right now. "
                                      "Thank you for stopping by."))
            return
        rows = tuple((Button(_title(f, reply.lang), f"{PREFIX}:f:{f.flow.id}"),) for f in public)
        if fitted(rows, reply.capabilities) is not None:
            reply.say(reply.t.gettext("Hello! Which survey would you like to take?"), rows)
            return
        # Without buttons: the command that starts each (/start takes a public flow's id).
        t = reply.t
        lines = [f"{t.isolate_ltr('/start ' + f.flow.id)}: {_title(f, reply.lang)}"
                 for f in public]
        reply.say(t.lines("\n".join(
            [t.gettext("Hello! Which survey would you like to take?"), *lines])))

    def _help(self, t: Translator) -> str:
        return help_text(t)

    async def _staff_command(
        self, event: Typed, name: str, argument: str, reply: Reply
    ) -> None:
        """A staff command: staff.py's to answer, for the admins only."""
        if event.user.id in self.admin_ids:
            answer = await staff.run(name, argument, staff=f"{self.channel}:{event.user.id}",
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
        blocked: set[str] = set()
        reached: set[str] = set()  # chats that got a message
        unanswered: set[str] = set()  # chats a message was refused to
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
                    log.error("%s refused a %s: %s", self.title, type(out).__name__, exc)
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
            await self._tell_staff("reply", f"{self.title} refused one of Sada's replies (see "
                                   "the log for which); the person got an apology instead.")
            contact = await self.store.find_contact(self.channel, chat)
            t = Translator(contact.language if contact and contact.language else "en")
            await self._apologise(chat, t.gettext(
                "Sorry, our reply could not be shown; the survey team has been told."),
                transport)

    async def _question_refused(self, out: SendText, exc: Refused, transport: Transport) -> bool:
        """The channel will not show this question (400: too long, a bad button …), however often
        it is sent. Mark it shown, so that neither the next start (resume_pending) nor the
        person's next message sends it again, tell the operators, and tell the person how to
        go on. True when the apology reached them."""
        assert out.session_id is not None
        session = await self.store.get_session(out.session_id)
        flow = session.flow_id if session else "?"
        log.error("%s refused question %s of flow %s (session %s): %s; the respondent was "
                  "told it could not be shown: shorten it (sada flows lint)",
                  self.title, out.question_id, flow, out.session_id, exc)
        await self.store.mark_shown(out.session_id, out.question_id, None)
        await self._tell_staff(
            f"{flow}:{out.question_id}",
            f"{self.title} refused question {out.question_id} of flow {flow}: "
            f"{staff_line(str(exc))}. Respondents see an apology instead; fix the flow "
            "(sada flows lint) and restart the bot.")
        t = Translator(session.language if session else "en")
        return await self._apologise(out.chat_id, t.gettext(
            "Sorry, this question could not be shown; the survey team has been told. "
            "Send /skip to go on or /stop to end the survey."), transport)

    async def _tell_staff(self, what: str, text: str) -> None:
        """An alert to the staff chats through the outbox, once a day per `what`: every
        respondent meets the same refusal, and staff need one notice, not hundreds."""
        now = self.service.clock()
        async with self.store.database.session() as s, s.begin():
            for channel, address in dict.fromkeys(self.alert_to):
                await enqueue(s, key=f"refused:{what}:{now:%Y-%m-%d}:{channel}:{address}",
                              kind="alert", channel=channel, address=address,
                              contact_id=None, text=text, due_at=now, now=now)

    async def _apologise(self, chat: str, text: str, transport: Transport) -> bool:
        try:
            await self._with_retries(SendText(chat, text), transport)
        except (Blocked, Refused, Transient) as exc:
            log.warning("could not send the apology: %s", exc)  # the chat: in the context
            return False
        return True

    async def _with_retries(self, out: Out, transport: Transport) -> int | None:
        """Send, waiting out 429s and backing off after network errors. Waiting happens in
        the chat's lane (lanes.py): other people's updates go on meanwhile, and a stop cuts
        the wait short (Transient: not sent)."""
        delay = 0.5
        booked = False  # the retry of a 429 has its time already (SharedRateLimiter)
        for attempt in range(6):
            try:
                if not booked:
                    await self._pace(out)
                booked = False
                return await _send(out, transport)
            except RetryAfter as exc:
                wait, booked = await self._after_429(out, exc)
                if exc.seconds > LONGEST_WAIT:
                    # A channel paused for long (WhatsApp's spam limit: an hour) must not hold
                    # the person's lane: unsent, so a question is shown on their next message.
                    raise Transient(f"not waiting {exc.seconds:g}s for a rate limit") from exc
                if not await wait_out(wait, self._sleep):
                    raise Transient("stopping: not waiting out a rate limit") from exc
            except Transient:
                if attempt == 5 or not await wait_out(delay, self._sleep):
                    raise
                delay = min(delay * 2, 30)
        raise Transient("gave up after repeated rate limits")

    async def _after_429(self, out: Out, exc: RetryAfter) -> tuple[float, bool]:
        """How long to wait before sending `out` again after a 429 asking `exc.seconds`,
        and whether that retry has booked its time. With several processes every one of
        them waits it out, as for the outbox's 429s (the others' sends would otherwise fill
        the window again before this retry), and a message's retry is booked at once, with
        the second before it kept clear. A limit of this one person (WhatsApp's pair rate)
        holds back only their lane, as in the outbox."""
        seconds = exc.seconds
        limiter = shared_limiter(self.channel)
        if limiter is None or isinstance(exc, ChatRetryAfter):
            return seconds, False
        chat = getattr(out, "chat_id", None)
        if chat is not None and not isinstance(out, AnswerPress) and seconds <= LONGEST_WAIT:
            wait = await limiter.retry(chat, seconds, reply=True)
            if wait is not None:
                return wait, True
        limiter.pause(seconds)
        # between processes on a busy machine a send reaches the channel later than booked,
        # and its window with it: the retry keeps the bookings' margin
        return seconds + CHAT_MARGIN, False

    async def _pace(self, out: Out) -> None:
        """With several processes on PostgreSQL, a message waits for its turn within the
        channel's limits, shared by all of them (bot/followups/shared_rate.py); in the lane,
        so other people's updates go on meanwhile. A press's answer is no message."""
        limiter = shared_limiter(self.channel)
        chat = getattr(out, "chat_id", None)
        if limiter is None or chat is None or isinstance(out, AnswerPress):
            return

        async def nap(seconds: float) -> None:
            if not await wait_out(seconds, self._sleep):
                raise Transient("stopping: not waiting for the send limits")

        await limiter.acquire_reply(chat, nap)

    async def _unreachable(self, chat_id: str | None) -> None:
        if chat_id is None:
            return
        async with self.store.database.session() as s, s.begin():
            await on_unreachable(s, channel=self.channel, address=chat_id,
                                 now=self.service.clock())

    async def resume_pending(self, transport: Transport) -> int:
        """After a restart: show every question that was committed but never delivered.

        Chats side by side in lanes, as updates are: a rate limit for one chat delays only
        that chat, not the start for everyone."""
        found = await self.store.undelivered_sessions(self.channel)
        if self.store.database.engine.dialect.name == "postgresql" and \
                await other_runs(self.store.database):
            # Other processes may run beside this one: a question committed moments ago may
            # still be on its way from one of them (its delivery waits out at most
            # LONGEST_WAIT). Those are looked at again once that time has passed.
            settled = self.service.clock() - timedelta(seconds=SETTLE_SECONDS)
            recent = [(s, a) for s, a in found if _aware(s.last_activity_at) > settled]
            found = [(s, a) for s, a in found if _aware(s.last_activity_at) <= settled]
            if recent:
                task = asyncio.get_running_loop().create_task(self._resume_settled(
                    transport, {s.id for s, _ in recent}))
                _SETTLING.add(task)
                task.add_done_callback(_SETTLING.discard)
        return await self._show_all(found, transport)

    async def _show_all(
        self, found: list[tuple[SurveySession, str]], transport: Transport
    ) -> int:
        lanes = ChatLanes()
        shown = [
            lanes.submit(address,
                         functools.partial(self._show_again, session, address, transport))
            for session, address in found
        ]
        return sum(await asyncio.gather(*shown))

    async def _resume_settled(self, transport: Transport, ids: set[int | None]) -> None:
        """Show the questions of sessions `ids` still undelivered once no other process
        can be delivering them any more."""
        await asyncio.sleep(SETTLE_SECONDS)
        try:
            found = [(s, a) for s, a in await self.store.undelivered_sessions(self.channel)
                     if s.id in ids]
            shown = await self._show_all(found, transport)
        except Exception:
            log.exception("could not re-send the questions committed before the start")
            return
        if shown:
            log.info("%s: re-sent %d question(s) committed before the start but never shown",
                     self.title, shown)

    async def _show_again(
        self, session: SurveySession, address: str, transport: Transport
    ) -> None:
        conversation = await self.service.resume(session)
        reply = Reply(address, conversation.state.language, self.capabilities)
        self._show(conversation, [ask(conversation.flow, conversation.state)], reply)
        await self.deliver(reply.outs, transport)


@metrics.counts_sends("reply", lambda out, transport: transport.channel)
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


# A destination of staff messages: a channel and its address of the chat there.
Address = tuple[str, str]

# The longest rate-limit wait sat out inside a chat's lane, in seconds; beyond it the send
# is given up as Transient.
LONGEST_WAIT = 30.0
# How old a committed question must be before a starting process re-sends it, when other
# processes may be delivering it (PostgreSQL).
SETTLE_SECONDS = LONGEST_WAIT + 5.0
# re-sendings, once settled, of what was committed just before the start
_SETTLING: set[asyncio.Task[None]] = set()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def menu_label(t: Translator) -> str:
    """The label of the button that opens a list of options (WhatsApp), in the reader's
    language."""
    return t.gettext("Choose")


def _alert_to(
    channel: str, admin_ids: frozenset[str], alert_to: Sequence[Address] | None
) -> list[Address]:
    if alert_to is None:
        return [(channel, admin) for admin in sorted(admin_ids)]
    return list(alert_to)


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


def _apology(event: Inbound) -> list[Out]:
    """The answer to an update that failed: in the phone's language, as nothing else is
    known by then."""
    code = (event.user.language_code or "").split("-")[0]
    text = Translator(code if code in LANGUAGES else "en").gettext(
        "Sorry, something unexpected happened. Please try again.")
    if isinstance(event, Pressed):
        return [AnswerPress(event.callback_id, text)]
    return [SendText(event.chat_id, text)]


def _title(loaded: LoadedFlow, lang: str) -> str:
    title = loaded.flow.title
    return title.get(lang) or title.get(loaded.flow.default_language) or loaded.flow.id  # type: ignore[call-overload]
