"""Verifies webhook deliveries with the Standard Webhooks reference library (PyPI
`standardwebhooks`), an implementation independent of ours.

stdin: a JSON list of {"secret": "whsec_...", "body": "...", "headers": {...}}
stdout: a JSON list with, for each, the parsed payload or {"error": "..."}.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook

results = []
for item in json.load(sys.stdin):
    try:
        results.append(Webhook(item["secret"]).verify(item["body"], item["headers"]))
    except Exception as error:  # noqa: BLE001 - every refusal is reported, not raised
        results.append({"error": f"{type(error).__name__}: {error}"})
json.dump(results, sys.stdout)
