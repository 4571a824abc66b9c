"""What a get may cost, and whose read goes next.

Theory of operation. One small frame must not be able to stall everyone else's reads, so a read
is bounded three ways:

- **By its budget.** A lex query (a soul prefix or range, a key prefix or range) that names no
  ``%`` budget gets ``DEFAULT_LEX_BUDGET``, as GunJS's RAD does (it answers such a query with its
  first match); a whole node or one key is not a query and has none. Every read is also capped at
  ``MAX_FIELDS`` fields, whatever its budget.
- **By pages.** Storage answers a read a page at a time: about ``PAGE_BYTES`` of fields and
  ``PAGE_SCAN`` rows looked at (``storage.base.ReadQuery``). Each page is sent as its own reply
  to the get (GunJS merges every reply to one get, as it merges RAD's chunks), so nothing is held
  whole, and the next page is read only once the asker's outbox has room (a slow reader cannot
  make the relay buffer its answer).
- **By its turn.** ``FairQueue`` gives each connection its own queue of reads and starts them
  round-robin, at most ``in_flight`` at once across all connections; a connection with nothing
  queued goes to the front. A connection that queues thousands of reads waits for its own; a
  newcomer's read waits for at most the ``in_flight`` pages already being read. ``IN_FLIGHT``
  trades that wait against throughput: the store's reader thread takes every started read in one
  wake, so a small bound costs a thread hop per few gets (8: 11,300 gets/s and 21 ms for a
  newcomer under attack; 128 pages of 64 KiB: 24,000 gets/s and 85 ms; docs/hardening.md).
  A connection that goes away takes its queued reads with it (``drop``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .graph import State
from .lex import Lex

DEFAULT_LEX_BUDGET = 1  # RAD's: a lex query without '%' is answered with its first match
MAX_FIELDS = 100_000  # fields one get may be answered with, in all its pages
PAGE_BYTES = 64 * 1024  # fields' text (soul, key, value) in one page, about
PAGE_SCAN = 20_000  # stored rows one page may look at
IN_FLIGHT = 128  # pages being read at once, across all connections
MAX_QUEUED = 10_000  # reads one connection may have waiting; more are refused with an error
OUTBOX_ROOM = 4 * PAGE_BYTES  # the next page is read only while less than this waits to be sent


Row = tuple[str, str, State]  # (key, value as JSON text, state)


@dataclass(frozen=True, slots=True)
class ReadQuery:
    soul: str | None  # exact soul
    soul_lex: Lex | None = None  # or a query over souls
    key: Lex | None = None  # None: every key
    budget: int | None = None  # '%' in bytes, None: unlimited
    max_fields: int = 100_000  # hard cap per reply set, whatever the budget
    after: tuple[str, str | None] | None = None  # resume after this (soul, key; None: the whole soul), in the scan's order
    page_bytes: int | None = None  # end the page once its fields' text passes this (None: no pages)
    scan_limit: int | None = None  # end the page after looking at this many stored rows


@dataclass(frozen=True, slots=True)
class ReadPage:
    souls: dict[str, list[Row]]
    resume: tuple[str, str | None] | None  # where the next page starts (None: the read is complete)
    spent: int  # what the page's fields counted against the budget
    fields: int


Owner = TypeVar("Owner", bound=Hashable)
Item = TypeVar("Item")


class FairQueue(Generic[Owner, Item]):
    """Per-owner FIFO queues served round-robin, with at most ``in_flight`` items started and not
    yet finished. Pure: the caller starts what ``add``/``finished`` return and reports each
    started item's end with ``finished``."""

    def __init__(self, in_flight: int = IN_FLIGHT, max_queued: int = MAX_QUEUED):
        self.in_flight = in_flight
        self.max_queued = max_queued
        self.running = 0
        self._queues: OrderedDict[Owner, deque[Item]] = OrderedDict()

    def add(self, owner: Owner, item: Item, *, first: bool = False) -> list[tuple[Owner, Item]] | None:
        """Queue ``item`` (at the front of its owner's queue when ``first``: the next page of a
        read already under way); what to start now, or None when the owner has too many queued."""
        queue = self._queues.get(owner)
        if queue is None:
            # an owner with nothing queued goes first (as fq_codel favours new flows): a client
            # asking one thing at a time never waits behind a flood's backlog
            queue = self._queues[owner] = deque()
            self._queues.move_to_end(owner, last=False)
        elif len(queue) >= self.max_queued and not first:
            return None
        if first:
            queue.appendleft(item)
        else:
            queue.append(item)
        return self._start()

    def finished(self) -> list[tuple[Owner, Item]]:
        """One started item is done; what to start now."""
        self.running -= 1
        return self._start()

    def drop(self, owner: Owner) -> int:
        """Forget the owner's queued items (it has gone); how many."""
        queue = self._queues.pop(owner, None)
        return len(queue) if queue else 0

    def queued(self, owner: Owner) -> int:
        queue = self._queues.get(owner)
        return len(queue) if queue else 0

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def _start(self) -> list[tuple[Owner, Item]]:
        started: list[tuple[Owner, Item]] = []
        queues = self._queues
        while self.running < self.in_flight and queues:
            owner, queue = next(iter(queues.items()))
            item = queue.popleft()
            if queue:
                queues.move_to_end(owner)  # its next item waits for everyone else's turn
            else:
                del queues[owner]
            self.running += 1
            started.append((owner, item))
        return started
