"""A local SMTP server for Skyvault's tests (aiosmtpd, from PyPI).

Usage: python3 tests/smtp_sink.py PORT DIRECTORY

Writes each message it accepts to DIRECTORY as <n>.json: the envelope ("from", "to") and the
message decoded as a reader sees it ("subject", "body"), beside the raw "data". A recipient
whose address starts with "refuse" is refused with 550, as a real server refuses an unknown
mailbox. Prints "ready" once it listens.
"""

import threading
import email
import email.policy
import json
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("refuse"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        path = os.path.join(self.directory, "%04d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            json.dump(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "subject": str(message["subject"]),
                    "sender": str(message["from"]),
                    "body": message.get_content().replace("\r\n", "\n"),
                    "data": envelope.content.decode("utf-8", "replace"),
                },
                out,
            )
        os.replace(path + ".tmp", path)
        return "250 Message accepted"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
