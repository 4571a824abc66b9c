"""gunrelay: a GUN (GunJS) relay server with durable storage and resets that stick."""

__version__ = "0.1.0"
