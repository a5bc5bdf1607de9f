"""Bans: reading a ban from staff input, and deciding whether a comment falls under one.

A ban names one or more of an e-mail address (compared case-insensitively, ``+tags``
ignored), a client address or network, a single sign-on ``sub``, or a name (with its
look-alike spellings, :mod:`server.discussion.lookalikes`). A comment matching any of them
while the ban is live is stored as spam with the reason ``banned``; the commenter is told the
same as for any held comment, so a ban cannot be probed for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from db.bans import Ban, NewBan
from db.models import now
from server.discussion import values as boundary
from server.discussion.errors import InvalidInput
from server.discussion.lookalikes import mailbox, skeleton
from server.discussion.shapes import iso
from server.discussion.validation import MAX_AUTHOR, MAX_EMAIL, valid_email
from server.i18n import N_

BANNED = N_("banned")  # the reason stored with a banned commenter's comment
MAX_REASON = 500
MAX_SUB = 200
KEYS = ("email", "address", "sub", "name")


def _network(value: str) -> str | None:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        return None


def _expiry(value: str) -> datetime | None:
    """Through the date boundary: a date that leaves the calendar in UTC is no date."""
    try:
        return boundary.parse_date(value, "expires")
    except InvalidInput:
        return None


def parse_ban(data: Mapping[str, Any]) -> NewBan:
    """The ban staff asked for, or :class:`InvalidInput` (422) naming every bad field."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for key in (*KEYS, "reason", "expires"):
        raw = data.get(key)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            errors[key] = N_("This must be text.")
        elif boundary.has_lone_surrogate(raw):
            errors[key] = N_("This contains characters that are not valid text.")
        elif boundary.plain(raw).strip():
            values[key] = boundary.plain(raw).strip()
    email = values.get("email")
    if email is not None and (len(email) > MAX_EMAIL or not valid_email(email)):
        errors["email"] = N_("Please enter a valid e-mail address.")
    address = values.get("address")
    network = _network(address) if address is not None else None
    if address is not None and network is None:
        errors["address"] = N_(
            "Give an IP address (203.0.113.7) or a network in CIDR notation (203.0.113.0/24)."
        )
    sub = values.get("sub")
    if sub is not None and len(sub) > MAX_SUB:
        errors["sub"] = N_("Please use at most 200 characters.")
    name = values.get("name")
    if name is not None and len(name) > MAX_AUTHOR:
        errors["name"] = N_("Please use at most 100 characters.")
    elif name is not None and not skeleton(name):
        errors["name"] = N_("This name has no letters or digits to compare.")
    reason = values.get("reason", "")
    if len(reason) > MAX_REASON:
        errors["reason"] = N_("Please use at most 500 characters.")
    expires = None
    if "expires" in values:
        expires = _expiry(values["expires"])
        if expires is None:
            errors["expires"] = N_("Give the expiry in ISO 8601, such as 2027-01-31T00:00:00Z.")
        elif expires <= now():
            errors["expires"] = N_("The expiry must be in the future.")
    if not any(k in values for k in KEYS) and not any(k in errors for k in KEYS):
        errors["email"] = N_("Give at least one of e-mail, address, sub and name.")
    if errors:
        raise InvalidInput(fields=errors)
    return NewBan(
        email=mailbox(email) if email else None,
        address=network,
        sub=sub,
        name=name,
        name_key=skeleton(name) if name else None,
        reason=reason,
        expires=expires,
        net_low=_range(network)[0] if network else None,
        net_high=_range(network)[1] if network else None,
    )


def address_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as 32 hex digits of its IPv6 form (IPv4 mapped): text that sorts as the
    addresses do, so a network is a range both database engines can compare."""
    if isinstance(address, ipaddress.IPv4Address):
        address = ipaddress.IPv6Address(f"::ffff:{address}")
    return f"{int(address):032x}"


def _range(network: str) -> tuple[str, str]:
    parsed = ipaddress.ip_network(network)
    return address_key(parsed[0]), address_key(parsed[-1])


BanKeys = tuple[str, str | None, str, str | None]  # mailbox, sub, name skeleton, address key


def ban_keys(*, author: str, email: str, address: str | None, sub: str | None) -> BanKeys:
    """What a ban is matched against: the normalised e-mail address, the sub, the name's
    look-alike skeleton and the client address's key."""
    try:
        key = address_key(ipaddress.ip_address(address)) if address else None
    except ValueError:
        key = None
    return (mailbox(email) if email else "", sub, skeleton(author), key)


def ban_shape(ban: Ban) -> dict[str, Any]:
    """A ban as staff see it (``GET /api/bans``); never shown to readers."""
    return {
        "id": ban.id,
        "email": ban.email,
        "address": ban.address,
        "sub": ban.sub,
        "name": ban.name,
        "reason": ban.reason,
        "expires": iso(ban.expires),
        "created": iso(ban.created),
        "by": ban.by,
        "live": ban.live(now()),
    }
