#!/usr/bin/env python3
"""An SMTP server for relance's tests: aiosmtpd (an independent SMTP implementation)
listening on 127.0.0.1 on a free port, printed on the first line of stdout.

Each accepted message is written to DIR as NNN.eml (the raw message) and NNN.json
(envelope and the parts as Python's email parser reads them).

  --fail-first N   answer the first N messages with 451 (temporary)
  --reject         answer every message with 550 (permanent)
  --starttls CERT KEY   offer STARTTLS with this certificate and require it
  --auth USER:PASSWORD  require authentication (after STARTTLS)
  --delay SECONDS  wait this long before answering each message (a slow server)
"""
import argparse
import asyncio
import hashlib
import json
import os
import ssl
import sys
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, AuthResult


class Sink:
    def __init__(self, out, fail_first, reject, delay=0.0):
        self.delay = delay
        self.out = out
        self.fail_first = fail_first
        self.reject = reject
        self.seen = 0
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.seen += 1
        if self.reject:
            return "550 5.1.1 Mailbox unavailable"
        if self.seen <= self.fail_first:
            return "451 4.3.0 Temporary failure, try again later"
        self.accepted += 1
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        stem = os.path.join(self.out, "%03d" % self.accepted)
        with open(stem + ".eml", "wb") as f:
            f.write(raw)
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        parts = {}
        attachments = []
        for part in msg.walk():
            ctype = part.get_content_type()
            if part.get_content_disposition() == "attachment":
                data = part.get_payload(decode=True)
                attachments.append({
                    "filename": part.get_filename(),
                    "content_type": ctype,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                })
            elif ctype in ("text/plain", "text/html"):
                parts[ctype] = part.get_content()
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["Subject"]),
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "cc": str(msg["Cc"]) if msg["Cc"] else None,
            "reply_to": str(msg["Reply-To"]) if msg["Reply-To"] else None,
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "attachments": attachments,
        }
        with open(stem + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(summary, f, ensure_ascii=False)
        os.replace(stem + ".json.tmp", stem + ".json")
        return "250 2.0.0 OK queued"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--reject", action="store_true")
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth")
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    options = {}
    if args.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.starttls[0], args.starttls[1])
        options.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok)

        options.update(authenticator=authenticator, auth_required=True)
    os.makedirs(args.dir, exist_ok=True)
    sink = Sink(args.dir, args.fail_first, args.reject, args.delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test", decode_data=False, **options), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    # Stop when the test closes our stdin.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
