"""The channels a process knows, by name.

A channel declares itself in its own folder: `bot/channels/<folder>/channel.py` holds
`CHANNEL = Channel(...)`. The registry finds those modules the first time it is asked, so a
new channel is added without editing anything here. (The transport factory and the links
of each channel join `Channel` as the channels move onto this layer.)
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.messaging.capabilities import Capabilities

# Where channel folders live, and the module in each that declares the channel.
CHANNELS_PACKAGE = "bot.channels"
DECLARATION = "channel"


@dataclass(frozen=True)
class Channel:
    name: str  # how Sada names it: in settings, addresses and the outbox
    title: str  # how staff know it, in messages such as lint's
    capabilities: Capabilities


class UnknownChannel(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"no channel named {name!r}; the channels are: "
                         f"{', '.join(sorted(known)) or 'none'}")


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
