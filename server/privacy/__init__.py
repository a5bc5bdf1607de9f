"""A commenter's own data (GDPR articles 15 and 17): see it, download it, erase it.

``/privacy`` takes an e-mail address and mails a signed link to it (``links``); the link's
page lists every comment written with that address and offers a JSON download and erasure
(``pages``). Staff do the same for an address from the admin (``server.admin.privacy``).
"""
