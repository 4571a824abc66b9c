"""gunrelay's errors, in one tree: what others got wrong apart from what went wrong here.

- ``RemoteError``: what a peer or an operator sent cannot be used (a frame, a message, a graph, a
  lex query, a setting, an API request, an operator's command). Nothing was changed, and the
  text is meant for the sender: it says what was wrong and, where it helps, what is accepted.
  ``OperatorError`` is the operator's kind (a reset, rotation, TTL rule or snapshot request that
  cannot be carried out).
- ``LocalError``: this relay's own trouble (its storage, its files, its data folder, a relay it
  could not reach). The text says what an operator can do about it.

Both are ``GunrelayError``; the command line (``cli.py``) turns any of them into an exit with
the text, and is the only place that exits. ``RemoteError`` is also a ``ValueError``, as the
errors it gathers always were.
"""

from __future__ import annotations


class GunrelayError(Exception):
    """Anything gunrelay raises on purpose."""


class RemoteError(GunrelayError, ValueError):
    """What a peer or an operator sent cannot be used; nothing was changed."""


class OperatorError(RemoteError):
    """An operator's request (reset, rotation, TTL rule, snapshot, command) that cannot be carried out."""


class LocalError(GunrelayError):
    """This relay's own trouble: storage, files, its data folder, a relay it could not reach."""
