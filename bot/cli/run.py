"""`sada run` (the Telegram bot) and `sada link` (a t.me invitation link to a survey).

Every failure a person can cause or meet — no token, a malformed one, a bad --listen, an
unreachable Bot API, a busy port, a database that cannot open — ends in one line on stderr
and a non-zero exit code, never a traceback: 2 for bad input, 1 when something is unusable.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from bot.channels.telegram import DEFAULT_LISTEN
from bot.cli.common import ContextOption, database_url, id_parser, settings_or_exit
from bot.flow.model import LANGUAGES, Flow
from bot.i18n import CatalogError, check_catalogs
from bot.settings import Settings, variable_name

__all__ = ["Framework", "channels_or_exit", "link", "parse_listen", "register", "run",
           "settings_or_exit", "token_or_exit"]

TOKEN_FORMAT = re.compile(r"\d+:[A-Za-z0-9_-]{30,}")
LOOSE_TOKEN_FORMAT = re.compile(r"\d+:[A-Za-z0-9_-]+")


class _BadInput(ValueError):
    """A command-line value that names nothing: exit code 2."""


class Framework(StrEnum):
    aiogram = "aiogram"
    ptb = "ptb"


def _fail(message: str, code: int = 1) -> NoReturn:
    # markup=False: messages may hold brackets rich would read as tags; soft_wrap keeps
    # them on one line in narrow terminals.
    Console(stderr=True).print(message, style="red", markup=False, highlight=False,
                               soft_wrap=True)
    raise typer.Exit(code)


def _token(settings: Settings) -> str:
    token = settings.telegram.token
    return token.get_secret_value().strip() if token else ""


def token_or_exit(settings: Settings) -> str:
    """The bot token, or one line saying how to get one (exit code 2)."""
    token, name = _token(settings), variable_name("telegram", "token")
    if not token:
        _fail(f"{name} is not set: get a token from @BotFather and export {name}=…", 2)
    if not TOKEN_FORMAT.fullmatch(token):
        _fail(f"{name} does not look like a bot token: @BotFather gives digits, a colon and "
              "30 or more letters, digits, _ or - (like 123456789:AAF1x…)", 2)
    return token


def channels_or_exit(settings: Settings) -> list[str]:
    """The channels `sada run` runs: every Bot API channel with a token (Telegram, Bale),
    each token checked; else one line saying how to get one (exit code 2)."""
    from bot.channels.telegram.runner import StartError, bot_api_channels
    from bot.serving import webhook_channels

    channels = bot_api_channels(settings)
    hooks = [hook for hook in webhook_channels() if hook.enabled(settings)]
    if not channels and not hooks:
        name, bale = variable_name("telegram", "token"), variable_name("bale", "token")
        wa = variable_name("whatsapp", "phone_number_id")
        _fail(f"{name} is not set: get a token from @BotFather and export {name}=… (for "
              f"Bale, from @BotFather in Bale: export {bale}=…; for WhatsApp, {wa} and the "
              "other SADA_WHATSAPP__ settings; for the web chat, "
              f"{variable_name('web', 'public_url')}); or try `sada run --web-only`", 2)
    for channel in channels:
        if channel == "telegram":
            token_or_exit(settings)  # Telegram's token has a known shape
            continue
        group = getattr(settings, channel)
        token, name = group.token.get_secret_value().strip(), variable_name(channel, "token")
        # other servers' tokens are only known to share "<digits>:<letters>"
        if not LOOSE_TOKEN_FORMAT.fullmatch(token):
            _fail(f"{name} does not look like a bot token: its @BotFather gives digits, a "
                  "colon, then letters, digits, _ or - (like 123456789:AAF1x…)", 2)
    for hook in hooks:
        try:
            hook.check(settings)
        except StartError as exc:
            _fail(str(exc), 2)
        channels.append(hook.CHANNEL_NAME)
    return channels


def parse_listen(value: str) -> tuple[str, int]:
    """"127.0.0.1:8080", "0.0.0.0:80", "[::1]:8080" → (host, port); ValueError says why not."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT, such as 127.0.0.1:8080, not {value!r}")
    return host, int(port)


def _catalogs_or_exit() -> None:
    """Exit with one line unless every language the bot speaks has a readable catalog: its
    language menu offers them all whatever the flows, and a reader must never get English
    instead of their language."""
    try:
        check_catalogs(LANGUAGES)
    except CatalogError as exc:
        _fail(str(exc))


def _configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    from bot.logs import configure

    configure(level, fmt)  # the context fields (channel, update, contact, session) on each
    # httpx (PTB's HTTP client) logs every request URL at INFO, and the URL holds the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl SQLiteImpl" …
    # a line per job added and per run ("Adding job tentatively"): the follow-ups' own
    # log says what they do
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # a line per request, whose path may hold a personal link's token (/s/<token>) and
    # whose client is a person's IP address: only at DEBUG
    if level != "DEBUG":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


# --- sada run ---------------------------------------------------------------------------------


def run(
    framework: Annotated[
        Framework,
        typer.Option("--framework", "-f", help="The Telegram library to run on: aiogram or ptb "
                     "(python-telegram-bot). Both behave the same."),
    ] = Framework.aiogram,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", metavar="URL", help="Receive updates by webhook at this "
                     "public HTTPS URL (e.g. https://bot.example.com/telegram), served on "
                     "--listen behind your reverse proxy. Without it: long polling."),
    ] = None,
    listen: Annotated[
        str,
        typer.Option("--listen", metavar="HOST:PORT", help="Where the webhook server listens "
                     "(with --webhook, for WhatsApp, or for the HTTP API once an API key exists)."),
    ] = f"{DEFAULT_LISTEN[0]}:{DEFAULT_LISTEN[1]}",
    web_only: Annotated[
        bool,
        typer.Option("--web-only", help="Run only the web chat (no bot token needed), on "
                     "--listen, and print a link to a survey to open in your browser."),
    ] = False,
    flow: Annotated[
        str | None,
        typer.Option("--flow", metavar="ID", help="With --web-only: the flow its link opens "
                     "(default: b2b-supplier if served, else the first flow)."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR "
                     "(default: SADA_LOG_LEVEL, else INFO). Personal data only at DEBUG."),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", metavar="FORMAT", help="text, or json: an object per "
                     "line for log collectors (default: SADA_LOG_FORMAT, else text)."),
    ] = None,
) -> None:
    """Run the Telegram bot, the Bale bot, WhatsApp and the web chat, any of them, in one
    process, until Ctrl-C (or SIGTERM).

    Needs SADA_TELEGRAM__TOKEN, from @BotFather, or SADA_BALE__TOKEN, from Bale's
    @BotFather: each channel with a token runs. With --webhook, the first channel answers on
    the URL and Bale beside Telegram on the URL's path and /bale. WhatsApp runs with its
    SADA_WHATSAPP__ settings, its webhook on --listen at /whatsapp (or the --webhook URL's
    path and /whatsapp), a URL you type into the Meta app. Optional settings:
    SADA_TELEGRAM__ADMIN_IDS: user ids allowed /report, comma-separated;
    SADA_TELEGRAM__API_URL: another Bot API server (default https://api.telegram.org);
    SADA_TELEGRAM__WEBHOOK_SECRET: checked on every webhook request (default: derived from
    the token); SADA_DATABASE_URL and SADA_FLOWS_DIR. The README lists them all.

    The web chat runs with SADA_WEB__ENABLED=true or SADA_WEB__PUBLIC_URL, on --listen
    (docs/web-chat.md); --web-only runs it alone.

    On start, questions saved but not yet shown when the bot last stopped are sent.
    """
    from bot.channels.telegram.runner import StartError, run_bot, webhook_path
    from storage.db import StorageError, to_async_url

    settings = settings_or_exit()
    logging_options = _log_options(settings, log_level, log_format)  # a typo first
    if flow is not None and not web_only:
        _fail("--flow goes with --web-only: the link it prints opens that flow", 2)
    if web_only:
        if webhook is not None:
            _fail("--web-only serves the web chat alone: leave out --webhook", 2)
        settings = settings.model_copy(
            update={"web": settings.web.model_copy(update={"enabled": True})})
        channels = ["web"]
    else:
        channels = channels_or_exit(settings)
    try:
        address = parse_listen(listen)
        if webhook is not None:
            webhook_path(webhook)
        to_async_url(settings.effective_database_url)
    except (ValueError, StartError) as exc:
        _fail(str(exc), 2)
    _catalogs_or_exit()
    served = _served_flow(flow or _demo_flow(settings.flows_dir), settings.flows_dir) \
        if web_only else None
    _configure_logging(*logging_options)
    from storage.locks import name_this_run

    name_this_run()  # the bot's other processes see this one (controller.resume_pending)
    try:
        if served is not None:
            asyncio.run(_web_only(settings, served, address))
        else:
            asyncio.run(run_bot(settings, framework=framework.value, webhook_url=webhook,
                                listen=address, channels=channels, freeze_when_up=True))
    except (StartError, StorageError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        _fail("stopped before the shutdown finished", 130)


def _log_options(settings: Settings, level: str | None, fmt: str | None) -> tuple[str, str]:
    """--log-level and --log-format, else their settings; one line (exit 2) when bad."""
    from bot.logs import FORMATS
    from bot.settings import LOG_LEVELS

    level = (level or settings.log_level).strip().upper()
    fmt = (fmt or settings.log_format).strip().lower()
    if level not in LOG_LEVELS:
        _fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {level!r}", 2)
    if fmt not in FORMATS:
        _fail(f"--log-format must be text or json, not {fmt!r}", 2)
    return level, fmt


# The flow `sada run --web-only` links to unless --flow names another: the README's demo.
DEMO_FLOW = "b2b-supplier"


def _demo_flow(flows_dir: Path) -> str:
    from bot.conversation.controller import load_flows

    served = load_flows(flows_dir) if flows_dir.is_dir() else {}
    if not served:
        _fail(f"there are no flows in {flows_dir} (SADA_FLOWS_DIR) for the web chat to "
              "open; run it from the project's folder, or set SADA_FLOWS_DIR", 2)
    return DEMO_FLOW if DEMO_FLOW in served else sorted(served)[0]


async def _web_only(settings: Settings, flow: Flow, listen: tuple[str, int]) -> None:
    """The web chat alone: a link to `flow` printed once the server answers."""
    from bot.channels.telegram.runner import run_bot
    from bot.followups.invite import InviteError, check_context
    from bot.messaging.links import create_link
    from storage.db import Database
    from storage.repo import Store

    try:
        context = check_context(flow, [])
    except InviteError as exc:
        _fail(f"{exc} (sada run --web-only opens the flow without context: pick another "
              "with --flow)", 2)
    host, port = listen
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:  # busy: say so now, before a link to another program's server is printed
            probe.bind((host, port))
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another "
                  "--listen HOST:PORT")
    base = settings.web.public_url or f"http://{shown_host}:{port}"
    async with await Database.open(settings.effective_database_url) as database:
        url = await create_link(Store(database), channel="web", flow_id=flow.id,
                                contact_id=None, context=context, bot_username=base)
    serving = asyncio.create_task(run_bot(settings, framework="aiogram", webhook_url=None,
                                          listen=listen, channels=["web"],
                                          freeze_when_up=True))
    while not serving.done():  # the line once the page answers, so the link works at once
        try:
            _, writer = await asyncio.open_connection(shown_host, port)
        except OSError:
            await asyncio.wait([serving], timeout=0.05)
            continue
        writer.close()
        typer.echo(f"Open {url} in your browser")
        break
    await serving


# --- sada link --------------------------------------------------------------------------------

# The channel whose bot `sada link` links to unless --channel says another (its links' form
# comes from the registry): the bot of SADA_<CHANNEL>__BOT_USERNAME.
LINK_CHANNEL = "telegram"


WEB_CHANNEL = "web"


def _default_link_channel(settings: Settings) -> str:
    """Telegram's links, unless the web chat's public URL is the only way set to link."""
    telegram = settings.telegram
    if settings.web.public_url and not telegram.bot_username and telegram.token is None:
        return WEB_CHANNEL
    return LINK_CHANNEL


def _served_flow(flow: str, flows_dir: Path) -> Flow:
    """The flow named by `flow` (an id, or a YAML file), checked to be one the bot serves
    from flows_dir."""
    from bot.conversation.controller import load_flows
    from bot.flow.loader import FlowError, load_flow

    served = load_flows(flows_dir) if flows_dir.is_dir() else {}
    path = Path(flow)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            flow_id = load_flow(path).flow.id
        except FlowError as exc:
            problems = "; ".join(str(p) for p in exc.problems[:3])
            _fail(f"{flow}: the flow has errors ({problems}); see `sada flows lint`")
    else:
        flow_id = flow
    if flow_id not in served:
        known = ", ".join(sorted(served)) or "none"
        _fail(f"the bot serves no flow {flow_id!r} from {flows_dir} (SADA_FLOWS_DIR); it "
              f"serves: {known}", 2)
    return served[flow_id].flow


def _title(channel: str) -> str:
    from bot.messaging.registry import CHANNELS

    return CHANNELS.get(channel).title


async def _username_from_api(settings: Settings, channel: str, token: str) -> str:
    """The bot's username, asked from the channel's own Bot API server."""
    from bot.channels.telegram.aiogram_shell import build_bot, telegram_errors
    from bot.channels.telegram.runner import StartError
    from bot.messaging.transport import Blocked, Refused, RetryAfter, Transient

    title, api_url = _title(channel), getattr(settings, channel).api_url
    username = variable_name(channel, "bot_username")
    bot = build_bot(token, api_url)
    try:
        with telegram_errors():
            me = await bot.me()
    except (Refused, Blocked) as exc:
        raise StartError(f"{title} did not accept {variable_name(channel, 'token')} "
                         f"({exc}); check it with @BotFather, or set {username}") from None
    except (Transient, RetryAfter) as exc:
        raise StartError(f"cannot reach the {title} Bot API at {api_url} "
                         f"({exc}); set {username} to make links offline") from None
    finally:
        await bot.session.close()
    return me.username or ""


async def _make_link(
    settings: Settings, url: str, flow_id: str, contact: int | None, context: dict[str, str],
    *, confirm: bool = False, channel: str = LINK_CHANNEL,
) -> tuple[str, str | None]:
    """The link, and its confirmation code with `confirm`."""
    # Imported here, not at the top: storage costs start-up that `sada --help` should not pay.
    from bot.messaging.links import create_confirmed_link, create_link
    from storage.db import Database
    from storage.repo import Store

    username = getattr(settings, channel).link_name
    if not username:
        token = (token_or_exit(settings) if channel == "telegram"
                 else getattr(settings, channel).token.get_secret_value().strip())
        username = await _username_from_api(settings, channel, token)
    async with await Database.open(url) as database:
        store = Store(database)
        # checked first: the database would refuse it too, but with a foreign-key traceback
        found = None if contact is None else await store.get_contact(contact)
        if contact is not None and found is None:
            raise _BadInput(f"there is no contact {contact} in the database")
        if confirm and found is not None and found.id is not None:
            if not await store.adoptable(found.id, channel):
                raise _BadInput(f"contact {contact} already has a {channel} chat: the "
                                "link opens only in that chat, so --confirm is not needed")
            return await create_confirmed_link(store, channel=channel, flow_id=flow_id,
                                               contact_id=found.id, context=context,
                                               bot_username=username)
        return await create_link(store, channel=channel, flow_id=flow_id,
                                 contact_id=contact, context=context,
                                 bot_username=username), None


def link(
    flow: Annotated[str, typer.Argument(help="The flow's id, or its YAML file in the flows "
                                        "folder.")],
    contact: Annotated[
        int | None,
        typer.Option("--contact", parser=id_parser("contact", "sada contacts list"),
                     metavar="INTEGER",
                     help="Sada contact id the link is for: the answers and the "
                     "contact's details go with that contact. If the contact has no Telegram "
                     "chat yet, whoever opens the link first becomes that contact (a "
                     "forwarded link too): use --confirm where the contact's data is "
                     "sensitive. Without --contact, anyone with the link can answer."),
    ] = None,
    confirm: Annotated[
        bool,
        typer.Option("--confirm", help="With --contact: also print a 6-digit code to send "
                     "apart from the link (phone, SMS). The bot asks the opener for it "
                     "before the chat becomes the contact and shows nothing of the contact "
                     "until then; 5 wrong codes lock the link."),
    ] = False,
    context: ContextOption = None,
    channel: Annotated[
        str | None,
        typer.Option("--channel", metavar="NAME", help="The channel whose bot the link "
                     "opens: telegram (a t.me link), bale (a ble.ir link) or web (the web "
                     "chat at SADA_WEB__PUBLIC_URL; the default when only it is set)."),
    ] = None,
) -> None:
    """Print a t.me link (ble.ir with --channel bale) that opens the bot and starts FLOW.

    The bot cannot write first to someone who never opened a chat with it:
    send them this link by e-mail, SMS or your helpdesk instead.
    A personal link (--contact) for a contact that already has a Telegram chat opens only
    in that chat. For a contact without one, the first chat to open it becomes that
    contact: with --confirm it must send the code first (printed on a second line).
    The bot's name comes from SADA_TELEGRAM__BOT_USERNAME (SADA_BALE__BOT_USERNAME …), or
    from the channel's Bot API (its token).
    """
    from bot.channels.telegram.runner import StartError
    from bot.followups.invite import InviteError, check_context
    from storage.db import StorageError

    settings = settings_or_exit()
    served = _served_flow(flow, settings.flows_dir)
    try:
        values = check_context(served, context or [])
    except InviteError as exc:
        _fail(str(exc), 2)
    from bot.channels.telegram.runner import bot_api_groups

    linkable = [*bot_api_groups(settings), WEB_CHANNEL]
    if channel is None:
        channel = _default_link_channel(settings)
    if channel not in linkable:
        _fail(f"--channel must be one of {', '.join(linkable)}, not {channel!r}", 2)
    if channel == WEB_CHANNEL and not settings.web.public_url:
        name = variable_name(WEB_CHANNEL, "public_url")
        _fail(f"sada link needs the web chat's public address for a web link: set {name} "
              f"(e.g. export {name}=https://cx.example.com)", 2)
    group = getattr(settings, channel)
    token = group.token.get_secret_value().strip() if getattr(group, "token", None) else ""
    shape = TOKEN_FORMAT if channel == "telegram" else LOOSE_TOKEN_FORMAT
    if not group.link_name and not shape.fullmatch(token):
        # asking the API needs a usable token; the username is the simpler fix either way
        name = variable_name(channel, "bot_username")
        _fail(f"sada link needs the bot's name for the {_title(channel)} link: set {name} "
              f"(the bot's @username, e.g. export {name}=my_sada_bot)", 2)
    if confirm and contact is None:
        _fail("--confirm needs --contact: a code confirms who opens a personal link, e.g. "
              "sada link FLOW --contact 12 --confirm", 2)
    url = database_url()
    try:
        link_url, code = asyncio.run(_make_link(settings, url, served.id, contact, values,
                                                confirm=confirm, channel=channel))
    except _BadInput as exc:
        _fail(str(exc), 2)
    except (StartError, StorageError) as exc:
        _fail(str(exc))
    typer.echo(link_url)
    if code is not None:
        typer.echo(f"code: {code}  (send it apart from the link; the bot asks for it before "
                   f"the chat becomes contact {contact})")


def register(app: typer.Typer) -> None:
    """Add `run` and `link` to the `sada` app."""
    app.command("run")(run)
    app.command("link")(link)
