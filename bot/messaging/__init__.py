"""The channel-neutral messaging layer: what a channel can carry (capabilities), how a
message leaves (the Transport protocol and its errors), and which channels a process knows
(the registry). A channel lives in its own folder under bot/channels/ and declares itself
there; nothing here names a channel."""
