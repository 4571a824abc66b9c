"""The operator's surface: the JSON admin API (and, later, the web panel on top of it)."""
