"""Clients that honour resets: the JS plugin the relay serves (gunrelay.js), the demo page, and
the Python GUN peer (``from gunrelay.client import GunPeer``)."""

from .peer import GunPeer

__all__ = ["GunPeer"]
