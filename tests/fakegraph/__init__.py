"""A fake WhatsApp Cloud API (Graph API) HTTP server for the WhatsApp channel's tests."""

from .server import WINDOW_SECONDS, FakeGraphApi, FakeWhatsAppUser, GraphCall

__all__ = ["WINDOW_SECONDS", "FakeGraphApi", "FakeWhatsAppUser", "GraphCall"]
