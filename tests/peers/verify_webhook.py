#!/usr/bin/env python3
"""Verifies a webhook with the reference Standard Webhooks library (`standardwebhooks`
on PyPI), independent of relance's signing code.

  verify_webhook.py SECRET < request.json

request.json: {"headers": {"webhook-id": ..., "webhook-timestamp": ...,
"webhook-signature": ...}, "body": "<the raw body>"}. Exit 0 and print the parsed
payload when the signature verifies; exit 1 with the reason otherwise.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

request = json.load(sys.stdin)
try:
    payload = Webhook(sys.argv[1]).verify(request["body"], request["headers"])
except Exception as e:  # noqa: BLE001 - any failure is a failed verification
    print("verification failed: %s" % e, file=sys.stderr)
    sys.exit(1)
print(json.dumps(payload))
