"""The conversation layer, channel-neutral: what Sada says, whatever carries it."""
