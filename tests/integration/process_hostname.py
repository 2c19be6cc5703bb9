"""``[core] hostname_callable`` for the production rehearsal: each process on this one machine
names itself like its own pod would (``ELT_REHEARSAL_HOSTNAME``), so task instances and
triggerer jobs show which worker or triggerer ran them. Imports nothing but the standard library."""

import os
import socket


def hostname() -> str:
    return os.environ.get("ELT_REHEARSAL_HOSTNAME") or socket.getfqdn()
