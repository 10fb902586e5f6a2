"""Kept connections passed between processes: over a unix socket pair, as SCM_RIGHTS."""

import socket

HANDED = b"H"  # connections handed over, to be served on
RETURNED = b"R"  # connections nobody else will serve: the sender keeps them
TAKEN = b"T"  # to the sender: so many of its connections were passed on ("T12")
MAX_FDS = 64  # connections per message (the kernel allows 253)


def send_connections(channel, fds, kind=HANDED):
    """Send fds over a channel, MAX_FDS a message: (how many were sent, whether the
    rest may be sent later); the channel is broken when that is False and fds remain."""
    sent = 0
    try:
        while sent < len(fds):
            batch = fds[sent : sent + MAX_FDS]
            socket.send_fds(channel, [kind], batch)
            sent += len(batch)
    except (BlockingIOError, InterruptedError):
        return sent, True
    except OSError:
        return sent, False
    return sent, True


def receive_connections(channel):
    """(messages, open): the (data, fds) of each message waiting on a non-blocking
    channel, and whether the peer may send more (False once it closed its end).

    A peer that closes with messages of ours unread makes the next read fail
    (ECONNRESET) once; what it sent before is still there to read after that.
    """
    messages = []
    failed = False
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(channel, 16, MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return messages, True
        except OSError:
            if failed:
                return messages, False
            failed = True
            continue
        if not data and not fds:
            return messages, False
        messages.append((data, fds))


def taken(count):
    return TAKEN + str(count).encode()


def taken_count(data):
    return int(data[len(TAKEN) :] or 0)
