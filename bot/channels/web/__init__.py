"""The web chat: a survey in a browser, served by `sada run`'s one HTTP server.

channel.py declares it (capabilities, /s/<token> links, visitor ids), settings.py holds its
group (SADA_WEB__<KEY>), history.py keeps each visitor's conversation in the database,
transport.py writes the bot's messages there, http.py answers the browser (the contract is
docs/web-chat.md), page.py writes the /s/ page, and runner.py is its `sada run` hooks. The
browser side is static/sada.js.
"""
