"""Shared memory where workers publish their state for the master."""

import mmap
import struct
import threading
import time

_SLOT = struct.Struct("=dII")  # last activity (time.time), busy requests, state

STARTING = 0
READY = 1
STOPPING = 2


class Scoreboard:
    def __init__(self, slots):
        self.slots = slots
        self._map = mmap.mmap(-1, _SLOT.size * slots)

    def publish(self, slot, busy, state, activity=None):
        """activity: time.time() of the last request, None to keep the one published."""
        last = self.read(slot)[0] if activity is None else activity
        _SLOT.pack_into(self._map, slot * _SLOT.size, last, busy, state)

    def reset(self, slot):
        _SLOT.pack_into(self._map, slot * _SLOT.size, time.time(), 0, STARTING)

    def read(self, slot):
        return _SLOT.unpack_from(self._map, slot * _SLOT.size)


class Slot:
    """A worker's view: its own slot only."""

    def __init__(self, board, index):
        self.board = board
        self.index = index
        self.state = STARTING
        # Threads publish: a state must not be overwritten by one read before it changed.
        self.lock = threading.Lock()

    def publish(self, busy, activity=None, state=None):
        with self.lock:
            if state is not None:
                self.state = state
            self.board.publish(self.index, busy, self.state, activity)
