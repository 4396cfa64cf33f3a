"""Business code of the CliEcho worker; tests rewrite VERSION and reload."""
import os

VERSION = "v1"


def reply(worker, conn, data):
    if data == "whoami":
        return "%d:%d" % (os.getpid(), worker.id)
    return "%s:%s" % (VERSION, data)
