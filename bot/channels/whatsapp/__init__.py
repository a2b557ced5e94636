"""WhatsApp, through Meta's Cloud API (the Graph API), as a Sada channel.

channel.py declares it (capabilities, wa.me links, E.164 addresses read by numbers.py),
settings.py holds its group (SADA_WHATSAPP__<KEY>), transport.py sends over the Graph API with
httpx, and webhook.py turns Meta's webhooks into Sada's events as pure functions the runner mounts.
WhatsApp is unavailable to businesses and people in sanctioned countries (Iran and Syria
among them): Persian-speaking teams there use Telegram or Bale.
"""
