"""What a staff account must look like: the one copy of the rules for names, roles and
passwords, used by ``kibitz user add`` and by the admin's account form alike."""

from __future__ import annotations

import re

from server.i18n import N_

ROLES = ("admin", "moderator")
NAME = re.compile(r"^[\w.@-]{1,64}$")
MIN_PASSWORD = 8  # PASSWORD_RULE says 8: keep them together

NAME_RULE = N_("Use 1 to 64 letters, digits, '.', '@', '-' or '_'.")
ROLE_RULE = N_("Choose admin or moderator.")
PASSWORD_RULE = N_("Use at least 8 characters.")
EMAIL_RULE = N_("Enter an e-mail address, or leave it empty.")


def account_problems(name: str, role: str, password: str, email: str = "") -> dict[str, str]:
    """A message per field that breaks a rule; empty when the account may be created."""
    problems: dict[str, str] = {}
    if not NAME.match(name):
        problems["name"] = NAME_RULE
    if role not in ROLES:
        problems["role"] = ROLE_RULE
    if len(password) < MIN_PASSWORD:
        problems["password"] = PASSWORD_RULE
    if email and "@" not in email:
        problems["email"] = EMAIL_RULE
    return problems
