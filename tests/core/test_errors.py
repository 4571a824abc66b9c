"""One error tree: whoever catches an error knows whether the sender or the relay is at fault."""

from gunrelay.config import InvalidSetting
from gunrelay.core.errors import GunrelayError, LocalError, OperatorError, RemoteError
from gunrelay.core.graph import InvalidGraph
from gunrelay.core.lex import InvalidLex
from gunrelay.core.wire import FrameError, MessageError
from gunrelay.server.datalock import DataFolderBusy
from gunrelay.storage.graph import StorageFailure


def test_the_senders_errors_are_remote_and_still_value_errors():
    for error in (InvalidGraph, InvalidLex, InvalidSetting, OperatorError, FrameError, MessageError):
        assert issubclass(error, RemoteError) and issubclass(error, ValueError), error


def test_remote_and_local_are_the_two_kinds():
    assert issubclass(RemoteError, GunrelayError) and issubclass(LocalError, GunrelayError)
    assert not issubclass(RemoteError, LocalError) and not issubclass(LocalError, RemoteError)


def test_the_relays_own_trouble_is_local():
    for error in (StorageFailure, DataFolderBusy):
        assert issubclass(error, LocalError) and not issubclass(error, RemoteError), error
