#!/usr/bin/env python3
"""The HTTP peers of the crash test: an SMS gateway, a registered-mail provider, a
call-task webhook receiver and a credit insurer's handover endpoint, on one port of
127.0.0.1 (printed on the first line of stdout). Stops when stdin is closed, as
tests/peers/smtp_sink.py does.

  POST /sms              relance's generic HTTP SMS gateway (channels.sms.http); checks
                         the bearer token, records the `idempotency-key` header
  POST /registered-mail  the registered-mail adapter; records the `Idempotency-Key` header
  POST /calls            call-task notifications (Standard Webhooks)
  POST /insurer          insurer handovers (Standard Webhooks)

Signed requests are verified with the reference `standardwebhooks` library; a request
that does not verify is answered 401 and recorded with `"verified": false`.

Every request that arrives whole is appended to LOG as one JSON line: the endpoint, the
idempotency id, a SHA-256 of the body, what the body says (customer, invoices), whether
it was accepted, the time. `--fail-rate P` answers that share of /sms, /calls and
/registered-mail requests 503 (recorded as `"accepted": false`), to exercise retries.
"""
import argparse
import hashlib
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


class Recorder:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8")
        self.count = 0

    def record(self, entry):
        with self.lock:
            self.count += 1
            entry["seq"] = self.count
            self.file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.file.flush()
            return self.count


def make_handler(recorder, secret, token, fail_rate, rng):
    webhook = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if len(body) != length:
                return  # the sender died mid-request: nothing arrived
            path = self.path.split("?", 1)[0]
            entry = {
                "endpoint": path.strip("/"),
                "at": time.time(),
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "accepted": True,
            }
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if path in ("/calls", "/insurer"):
                entry["id"] = headers.get("webhook-id")
                try:
                    webhook.verify(body.decode("utf-8"), headers)
                    entry["verified"] = True
                except Exception as e:  # noqa: BLE001 - any failure is a failed verification
                    entry["verified"] = False
                    entry["error"] = str(e)
                    entry["accepted"] = False
                    recorder.record(entry)
                    return self.answer(401, {"error": "signature"})
                if path == "/insurer" and isinstance(doc, dict):
                    entry["customer"] = (doc.get("buyer") or {}).get("customer_id")
                    entry["invoices"] = sorted(i.get("number") for i in doc.get("invoices") or [])
                    entry["doc_id"] = doc.get("id")
                elif isinstance(doc, dict):
                    task = doc.get("task") or {}
                    entry["customer"] = (task.get("customer") or {}).get("id")
                    entry["action_id"] = task.get("action_id")
                    entry["invoices"] = sorted(i.get("number") for i in task.get("invoices") or [])
                    entry["type"] = doc.get("type")
            elif path == "/sms":
                entry["id"] = headers.get("idempotency-key")
                entry["verified"] = headers.get("authorization") == "Bearer " + token
                if isinstance(doc, dict):
                    entry["customer"] = doc.get("customer")
                    entry["action_id"] = doc.get("action_id")
                    entry["to"] = doc.get("to")
                    entry["text_sha256"] = hashlib.sha256((doc.get("text") or "").encode()).hexdigest()
                if not entry["verified"]:
                    entry["accepted"] = False
                    recorder.record(entry)
                    return self.answer(401, {"error": "token"})
            elif path == "/registered-mail":
                entry["id"] = headers.get("idempotency-key")
                entry["verified"] = True
                if isinstance(doc, dict):
                    entry["customer"] = (doc.get("recipient") or {}).get("customer_id")
                    entry["reference"] = doc.get("reference")
                    entry["document_sha256"] = (doc.get("document") or {}).get("sha256")
            else:
                return self.answer(404, {"error": "unknown endpoint"})
            if path != "/insurer" and fail_rate > 0 and rng.random() < fail_rate:
                entry["accepted"] = False
                recorder.record(entry)
                return self.answer(503, {"error": "try again"})
            seq = recorder.record(entry)
            ref = "%s-%06d" % (entry["endpoint"], seq)
            return self.answer(200, {"id": ref, "reference": ref})

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--secret", required=True, help="whsec_… of the signed endpoints")
    ap.add_argument("--token", required=True, help="bearer token the SMS gateway expects")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    recorder = Recorder(args.log)
    handler = make_handler(recorder, args.secret, args.token, args.fail_rate, random.Random(args.seed))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the harness closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main()
