"""Privacy mode: addresses shown as a network prefix plus a keyed hash, e.g. ``203.0.113.x~3fa9c2``.

The hash is an HMAC under a secret of the relay's, so the same address always gets the same
label (an operator can still tell peers apart and ban one) while the label cannot be reversed by
trying addresses. Labels this relay produced are remembered, so an operator can hand one back
(to ban or unban) and the relay knows which address it stands for. ``scrub`` replaces every IP
address found in a text (log lines).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

_IPV4 = r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"
_IPV6 = r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]{0,15}(?![\w:])"
_ADDRESS = re.compile(f"{_IPV6}|{_IPV4}")


class Anonymizer:
    def __init__(self, secret: bytes, max_known: int = 100_000):
        self._secret = secret
        self._known: dict[str, str] = {}  # label -> address
        self._max_known = max_known

    def label(self, address: str) -> str:
        digest = hmac.new(self._secret, address.encode(), hashlib.sha256).hexdigest()[:6]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            shown = "x"
        else:
            if ip.version == 4:
                shown = ".".join(address.split(".")[:3]) + ".x"
            else:
                shown = str(ipaddress.ip_network(f"{ip}/48", strict=False).network_address).rstrip(":") + "::x"
        label = f"{shown}~{digest}"
        if label not in self._known:
            if len(self._known) >= self._max_known:
                self._known.pop(next(iter(self._known)))
            self._known[label] = address
        return label

    def resolve(self, given: str) -> str:
        """The address behind a label this relay produced; anything else is taken as it is."""
        return self._known.get(given, given)

    def scrub(self, text: str) -> str:
        return _ADDRESS.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        found = match.group(0)
        try:
            ipaddress.ip_address(found)
        except ValueError:
            return found  # a time of day, a version number: not an address
        return self.label(found)


class Privacy:
    """Whether addresses are shown anonymised (in the console, the API's answers and the logs)."""

    def __init__(self, anonymizer: Anonymizer, enabled: bool = False):
        self.anonymizer = anonymizer
        self.enabled = enabled

    def show(self, address: str) -> str:
        return self.anonymizer.label(address) if self.enabled else address

    def text(self, text: str) -> str:
        return self.anonymizer.scrub(text) if self.enabled else text

    def resolve(self, given: str) -> str:
        return self.anonymizer.resolve(given)
