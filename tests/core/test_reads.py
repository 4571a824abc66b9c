"""FairQueue: per-connection queues served round-robin, a bound on reads in flight, drop on leave."""

from gunrelay.core.reads import FairQueue


def test_reads_start_at_once_up_to_the_in_flight_bound():
    queue: FairQueue[str, int] = FairQueue(in_flight=2)
    assert queue.add("a", 1) == [("a", 1)]
    assert queue.add("a", 2) == [("a", 2)]
    assert queue.add("a", 3) == []  # two are running
    assert queue.running == 2 and queue.queued("a") == 1


def test_a_newcomer_waits_for_no_more_than_the_reads_in_flight():
    queue: FairQueue[str, str] = FairQueue(in_flight=2)
    for i in range(1000):  # one connection queues a thousand reads
        queue.add("flood", f"f{i}")
    assert queue.add("newcomer", "n") == []
    started = queue.finished()  # one of the flood's two running reads ends: the newcomer is next
    assert started == [("newcomer", "n")]


def test_owners_take_turns():
    queue: FairQueue[str, str] = FairQueue(in_flight=1)
    queue.add("a", "a0")  # starts
    for i in range(1, 4):
        queue.add("a", f"a{i}")
    for i in range(3):
        queue.add("b", f"b{i}")
    order = []
    for _ in range(6):
        order += [item for _, item in queue.finished()]
    assert order == ["b0", "a1", "b1", "a2", "b2", "a3"]  # b arrived with nothing queued: it goes first
    assert queue.finished() == [] and queue.running == 0 and len(queue) == 0


def test_a_next_page_goes_before_the_owners_other_reads_but_not_before_other_owners():
    queue: FairQueue[str, str] = FairQueue(in_flight=1)
    queue.add("a", "a-get1")
    queue.add("a", "a-get2")
    queue.add("b", "b-get1")
    queue.add("a", "a-get1-page2", first=True)
    order = [item for _ in range(3) for _, item in queue.finished()]
    assert order == ["b-get1", "a-get1-page2", "a-get2"]


def test_a_connection_that_leaves_takes_its_queued_reads_with_it():
    queue: FairQueue[str, int] = FairQueue(in_flight=1)
    queue.add("gone", 0)
    for i in range(1, 50):
        queue.add("gone", i)
    queue.add("stays", 100)
    assert queue.drop("gone") == 49 and queue.drop("gone") == 0
    assert queue.finished() == [("stays", 100)]


def test_an_owner_may_queue_only_so_many():
    queue: FairQueue[str, int] = FairQueue(in_flight=1, max_queued=3)
    assert queue.add("a", 0) == [("a", 0)]
    for i in range(1, 4):
        assert queue.add("a", i) == []
    assert queue.add("a", 4) is None  # refused: the caller answers with an error
    assert queue.add("a", 5, first=True) == []  # a next page of a read under way is never refused
    assert queue.add("b", 0) == []  # another owner has its own allowance
