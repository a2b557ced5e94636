"""The channels a process knows, by name.

A channel declares itself in its own folder: `bot/channels/<folder>/channel.py` holds
`CHANNEL = Channel(...)`. The registry finds those modules the first time it is asked, so a
new channel is added without editing anything here. (The transport factory of each channel
joins `Channel` as the channels move onto this layer.)

A channel that can link to its bot declares how (`DeepLinks`): channel-neutral code (the
links of `sada link` and `sada invite`, an invitation's button) asks the registry for them
and never names a channel's URL or button grammar.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from bot.messaging.capabilities import Capabilities

# Where channel folders live, and the module in each that declares the channel.
CHANNELS_PACKAGE = "bot.channels"
DECLARATION = "channel"


@dataclass(frozen=True)
class DeepLinks:
    """How a channel links to its bot so that opening the link starts the bot with a payload
    (a Sada link token), and the data of a button that starts it the same way in a chat."""

    url: str  # with {bot} and {payload}, e.g. "https://t.me/{bot}?start={payload}"
    payload_characters: str  # what a payload may hold, as a regex class body: "A-Za-z0-9_-"
    payload_length: int  # a payload's characters, at most
    button: str  # a button's data, with {payload}

    def __post_init__(self) -> None:
        for name, template in (("url", self.url), ("button", self.button)):
            if "{payload}" not in template:
                raise ValueError(f"DeepLinks.{name} {template!r} must hold {{payload}}")
        if "{bot}" not in self.url:
            raise ValueError(f"DeepLinks.url {self.url!r} must hold {{bot}}")
        if self.payload_length < 1:
            raise ValueError("DeepLinks.payload_length must be at least 1")

    def carries(self, payload: str) -> bool:
        """Whether `payload` can ride in this channel's links as it is."""
        return re.fullmatch(f"[{self.payload_characters}]{{1,{self.payload_length}}}",
                            payload) is not None

    def link(self, bot: str, payload: str) -> str:
        """The link to `bot` (its @username, the @ optional) that starts it with `payload`."""
        if not self.carries(payload):
            raise ValueError(f"{payload!r} cannot be a start payload: at most "
                             f"{self.payload_length} characters of [{self.payload_characters}]")
        return self.url.format(bot=bot.lstrip("@"), payload=payload)

    def press(self, payload: str) -> str:
        """The data of a button that starts the bot with `payload`, as its link does."""
        return self.button.format(payload=payload)


@dataclass(frozen=True)
class AddressFormat:
    """What a person's address on a channel looks like, so a contacts file is checked row by
    row: `pattern` must match the whole id (digits already Latin, spaces removed) and `hint`
    ends the row's one-line error."""

    pattern: str  # a regex, e.g. "[1-9][0-9]{0,15}"
    hint: str  # e.g. "a number like 123456789"
    # How people write an address that is stored otherwise (a phone number's spaces, dashes,
    # "00" or "+", Persian digits → its E.164 digits); None from it: not an address here.
    normalise: Callable[[str], str | None] | None = field(default=None, compare=False)

    def accepts(self, address: str) -> bool:
        return re.fullmatch(self.pattern, address) is not None

    def normalised(self, written: str) -> str | None:
        """`written` as the address is stored, or None when it is not one."""
        address = written if self.normalise is None else self.normalise(written)
        return address if address is not None and self.accepts(address) else None


# A person's chat on a Bot API channel (Telegram, Bale): a positive number of at most 16
# digits (group and channel chats are negative).
BOT_API_CHAT = AddressFormat(pattern="[1-9][0-9]{0,15}",
                             hint="a positive number like 123456789, the person's chat id")


@dataclass(frozen=True)
class Channel:
    name: str  # how Sada names it: in settings, addresses and the outbox
    title: str  # how staff know it, in messages such as lint's
    capabilities: Capabilities
    links: DeepLinks | None = None  # None: the channel cannot link to its bot
    # What an address on it looks like; None: any text (checked only for length).
    address: AddressFormat | None = None
    # Notices said differently there (Notice key -> msgid): a terminal has no /start to
    # send, so "send /start to go on" would mislead.
    notices: Mapping[str, str] = field(default_factory=dict, hash=False)


class UnknownChannel(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"no channel named {name!r}; the channels are: "
                         f"{', '.join(sorted(known)) or 'none'}")


class NoLinks(LookupError):
    def __init__(self, channel: Channel) -> None:
        super().__init__(f"{channel.title} ({channel.name!r}) declares no links to its bot "
                         "(DeepLinks in its channel.py)")


class Registry:
    """Channels by name. ``Registry()`` holds what is registered into it; the process-wide
    `CHANNELS` also discovers the channels declared under bot/channels/."""

    def __init__(self, channels: Iterable[Channel] = (), *, discover: str | None = None) -> None:
        self._channels: dict[str, Channel] = {}
        self._discover = discover
        for channel in channels:
            self.register(channel)

    def register(self, channel: Channel) -> None:
        known = self._channels.get(channel.name)
        if known is not None and known != channel:
            raise ValueError(f"two channels are named {channel.name!r}: {known.title} and "
                             f"{channel.title}; rename one")
        self._channels[channel.name] = channel

    def get(self, name: str) -> Channel:
        self._discovered()
        try:
            return self._channels[name]
        except KeyError:
            raise UnknownChannel(name, self._channels) from None

    def links(self, name: str) -> DeepLinks:
        """How channel `name` links to its bot; UnknownChannel or NoLinks in one line."""
        channel = self.get(name)
        if channel.links is None:
            raise NoLinks(channel)
        return channel.links

    def reaching_absent(self) -> frozenset[str]:
        """The channels whose messages reach a person who is not looking (not the web page):
        where invitations and reminders may go."""
        return frozenset(c.name for c in self if c.capabilities.reaches_absent)

    def __iter__(self) -> Iterator[Channel]:
        """The channels, by name (a stable order for lint's messages)."""
        self._discovered()
        return iter(sorted(self._channels.values(), key=lambda c: c.name))

    def __contains__(self, name: object) -> bool:
        self._discovered()
        return name in self._channels

    def _discovered(self) -> None:
        if self._discover is None:
            return
        package, self._discover = importlib.import_module(self._discover), None
        for folder in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            if not folder.ispkg:
                continue
            try:
                module = importlib.import_module(f"{folder.name}.{DECLARATION}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{folder.name}.{DECLARATION}":
                    raise  # the declaration exists and imports something missing
                continue  # a folder that is not a channel
            channel = getattr(module, "CHANNEL", None)
            if not isinstance(channel, Channel):
                raise TypeError(f"{module.__name__} must define CHANNEL = Channel(...)")
            self.register(channel)


CHANNELS = Registry(discover=CHANNELS_PACKAGE)
