#!/usr/bin/env python3
"""A local webhook receiver: prints every delivery and checks its signature with the Standard
Webhooks reference library, as a real receiver would.

  .venv/bin/python scripts/webhook-receiver.py --secret whsec_... [--port 9000] [--fail 2]

Register it with the local stack:
  curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"url": "http://127.0.0.1:9000/", "events": ["project.created", "comment.created"]}' \
    http://127.0.0.1:3000/v1/workspaces/<workspace id>/webhooks
and start this with the `secret` that answer shows (once). `--fail N` answers 500 to the first N
deliveries, to watch the dispatcher retry (the next attempt comes 5 s later, then 5 min...).
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    sys.exit("standardwebhooks is missing: run scripts/dev.sh once (it installs scripts/requirements-dev.txt into .venv)")

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--port", type=int, default=9000)
parser.add_argument("--secret", help="the endpoint's signing secret (whsec_...); without it nothing is verified")
parser.add_argument("--fail", type=int, default=0, help="answer 500 to this many deliveries first")
args = parser.parse_args()
state = {"to_fail": args.fail}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if args.secret:
            try:
                Webhook(args.secret).verify(body, headers)
                verdict = "signature OK"
            except Exception as error:  # noqa: BLE001 - shown, not raised
                verdict = f"signature REFUSED ({error})"
        else:
            verdict = "signature not checked (no --secret)"
        failing = state["to_fail"] > 0
        state["to_fail"] -= 1 if failing else 0
        print(f"--- {headers.get('webhook-id')} at {headers.get('webhook-timestamp')}: {verdict}"
              f"{'; answering 500' if failing else ''}")
        try:
            print(json.dumps(json.loads(body), indent=2))
        except ValueError:
            print(body.decode(errors="replace"))
        sys.stdout.flush()
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, *_):
        pass


print(f"Receiving webhooks on http://127.0.0.1:{args.port}/ (Ctrl-C to stop)")
HTTPServer(("127.0.0.1", args.port), Receiver).serve_forever()
