"""A real SMTP server for the tests: aiosmtpd accepts each message and writes it, as
received, to a file in the given directory. Prints "READY <port>" once it listens.

Recipients whose local part starts with a word get that word's refusal, quoting the address
the way real servers do: unknown (550 5.1.1), full (552 5.2.2), later (451 4.3.0), slow
(450 4.7.1). With --auth-fail 1,3 it offers AUTH (over plain text: it is a test) and
refuses the first and third logins with 535, taking any other. With --port it listens
there rather than on a free port of its choosing."""

import argparse
import os
import socket
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

REFUSALS = {
    "unknown": "550 5.1.1 <{a}>: Recipient address rejected: User unknown in local recipient table",
    "full": "552 5.2.2 <{a}>: Mailbox full, quota exceeded for {a}",
    "later": "451 4.3.0 <{a}>: Temporary lookup failure",
    "slow": "450 4.7.1 <{a}>: Too many messages for {a}, slow down",
}


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        word = address.split("@")[0].split(".")[0]
        if word in REFUSALS:
            return REFUSALS[word].format(a=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = os.path.join(self.directory, f"{time.time_ns()}-{self.count}.eml")
        with open(name + ".tmp", "wb") as f:
            f.write(b"X-Rcpt-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name)
        return "250 Message accepted"


class Refuse:
    def __init__(self, logins):
        self.refused = {int(n) for n in logins.split(",")}
        self.count = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.count += 1
        return AuthResult(success=self.count not in self.refused, handled=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--auth-fail")
    # A given port: a server that comes up where the service already expects one.
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    # The controller checks it is up by connecting to its port, so it needs a real one.
    port = args.port
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    auth = {}
    if args.auth_fail is not None:
        auth = {"authenticator": Refuse(args.auth_fail), "auth_require_tls": False}
    controller = Controller(Store(args.directory), hostname="127.0.0.1", port=port, **auth)
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        # The test kills us when it is done; stdin closing also ends us.
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
