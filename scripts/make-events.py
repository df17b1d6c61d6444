#!/usr/bin/env python3
"""Writes events/*.json: API Gateway HTTP API (payload v2) events for every route family,
aimed at the demo workspace that `local-stack seed` creates; a Lambda Function URL event for the
Stripe webhook (signed with the development webhook secret when written; the webhook accepts
300 s of age, so sign it again right before use: `local-stack sign-stripe-event`); an SQS event for the
billing worker; and a scheduled event for reconciliation.

The Authorization header carries a long-lived HS256 token signed with the PUBLIC local
development secret; it is accepted only where AUTH_HS256_SECRET is that secret (a laptop).
Usage: python3 scripts/make-events.py "$(cargo run -q -p local-stack -- token --ttl-days 36500)"
"""
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

WEBHOOK_SECRET = b"whsec_local_development"

WS = "01935c00-0000-7000-8000-000000000001"
CLIENT = "01935c00-0000-7000-8000-000000000002"
PROJECT = "01935c00-0000-7000-8000-000000000003"
MILESTONE = "01935c00-0000-7000-8000-000000000004"

# (file, function, method, route key path, raw path, query, body)
EVENTS = [
    ("workspaces-list", "GET", "/v1/workspaces", "/v1/workspaces", "limit=10", None),
    ("workspaces-create", "POST", "/v1/workspaces", "/v1/workspaces", "", {"name": "Studio from an event"}),
    ("workspaces-get", "GET", "/v1/workspaces/{workspace_id}", f"/v1/workspaces/{WS}", "", None),
    ("workspaces-members-list", "GET", "/v1/workspaces/{workspace_id}/members", f"/v1/workspaces/{WS}/members", "", None),
    ("workspaces-clients-create", "POST", "/v1/workspaces/{workspace_id}/clients", f"/v1/workspaces/{WS}/clients", "",
     {"name": "Globex", "email": "hello@globex.test"}),
    ("workspaces-contacts-list", "GET", "/v1/workspaces/{workspace_id}/clients/{proxy+}",
     f"/v1/workspaces/{WS}/clients/{CLIENT}/contacts", "", None),
    ("projects-list", "GET", "/v1/workspaces/{workspace_id}/projects", f"/v1/workspaces/{WS}/projects",
     "status=active&limit=10", None),
    ("projects-create", "POST", "/v1/workspaces/{workspace_id}/projects", f"/v1/workspaces/{WS}/projects", "",
     {"name": "Brand refresh", "client_id": CLIENT, "due_date": "2027-03-31"}),
    ("projects-get", "GET", "/v1/workspaces/{workspace_id}/projects/{proxy+}",
     f"/v1/workspaces/{WS}/projects/{PROJECT}", "", None),
    ("projects-milestones-list", "GET", "/v1/workspaces/{workspace_id}/projects/{proxy+}",
     f"/v1/workspaces/{WS}/projects/{PROJECT}/milestones", "", None),
    ("projects-deliverables-create", "POST", "/v1/workspaces/{workspace_id}/projects/{proxy+}",
     f"/v1/workspaces/{WS}/projects/{PROJECT}/deliverables", "",
     {"title": "Style guide", "milestone_id": MILESTONE, "client_visible": True}),
    ("projects-comments-create", "POST", "/v1/workspaces/{workspace_id}/projects/{proxy+}",
     f"/v1/workspaces/{WS}/projects/{PROJECT}/comments", "", {"body": "Style guide is ready.", "client_visible": True}),
    ("workspaces-billing-get", "GET", "/v1/workspaces/{workspace_id}/billing", f"/v1/workspaces/{WS}/billing", "", None),
    # The demo workspace already subscribes: checkout answers 409 subscription_exists, by design.
    ("checkout-create", "POST", "/v1/workspaces/{workspace_id}/billing/checkout",
     f"/v1/workspaces/{WS}/billing/checkout", "",
     {"plan": "pro", "success_url": "http://127.0.0.1:3000/billing?ok=1", "cancel_url": "http://127.0.0.1:3000/billing"}),
    ("ai-runs-create", "POST", "/v1/workspaces/{workspace_id}/ai/runs", f"/v1/workspaces/{WS}/ai/runs", "",
     {"tool": "project_status_summary", "project_id": PROJECT, "input": {"focus": "risks"}}),
    ("ai-runs-list", "GET", "/v1/workspaces/{workspace_id}/ai/runs", f"/v1/workspaces/{WS}/ai/runs", "limit=10", None),
    ("portal-create", "POST", "/v1/workspaces/{workspace_id}/billing/portal", f"/v1/workspaces/{WS}/billing/portal", "",
     {"return_url": "http://127.0.0.1:3000/settings"}),
]


def subscription_event(now):
    return {
        "id": "evt_demo_subscription_updated", "object": "event", "api_version": "2026-09-30.endive",
        "created": now, "livemode": False, "pending_webhooks": 1, "type": "customer.subscription.updated",
        "data": {"object": {
            "id": "sub_demo", "object": "subscription", "customer": "cus_demo", "status": "active",
            "cancel_at_period_end": False, "metadata": {"workspace_id": WS},
            "items": {"object": "list", "has_more": False, "data": [{
                "id": "si_demo", "object": "subscription_item", "current_period_end": now + 2592000,
                "price": {"id": "price_studio", "object": "price", "lookup_key": "studio_monthly"}, "quantity": 1}]}}},
    }


def webhook_event(now):
    body = json.dumps(subscription_event(now), separators=(",", ":"))
    signature = hmac.new(WEBHOOK_SECRET, f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json; charset=utf-8", "stripe-signature": f"t={now},v1={signature}",
                    "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)", "host": "abc.lambda-url.us-east-1.on.aws"},
        "requestContext": {"accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
                           "domainPrefix": "abc", "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                           "sourceIp": "3.18.12.63", "userAgent": "Stripe/1.0"}, "requestId": "evt-stripe-webhook",
                           "routeKey": "$default", "stage": "$default", "time": "22/Nov/2026:12:00:00 +0000", "timeEpoch": now * 1000},
        "body": body, "isBase64Encoded": False,
    }


def sqs_event(now):
    return {"Records": [{
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": json.dumps(subscription_event(now)),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(now * 1000), "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                       "ApproximateFirstReceiveTimestamp": str(now * 1000)},
        "messageAttributes": {"event_type": {"stringValue": "customer.subscription.updated", "dataType": "String"}},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stripe-events",
        "awsRegion": "us-east-1"}]}


SCHEDULE = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
            "source": "aws.scheduler", "account": "123456789012", "time": "2026-11-22T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/billing-reconcile"], "detail": {}}


def event(name, method, route, path, query, body, token):
    headers = {
        "accept": "application/json",
        "authorization": f"Bearer {token}",
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-forwarded-for": "192.0.2.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        headers["content-type"] = "application/json"
    return {
        "version": "2.0",
        "routeKey": f"ANY {route}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.10",
                     "userAgent": "curl/8.5.0"},
            "requestId": f"evt-{name}",
            "routeKey": f"ANY {route}",
            "stage": "$default",
            "time": "22/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795348800000,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def main():
    token = sys.argv[1]
    out = Path(__file__).resolve().parent.parent / "events"
    out.mkdir(exist_ok=True)
    for name, method, route, path, query, body in EVENTS:
        data = event(name, method, route, path, query, body, token)
        if data["body"] is None:
            del data["body"]
        (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        print(f"events/{name}.json")
    now = int(time.time())
    usage = sqs_event(now)
    usage["Records"][0]["body"] = "01935c00-0000-7000-8000-00000000a1a1"  # a usage record id
    usage["Records"][0]["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:usage"
    usage["Records"][0]["messageAttributes"] = {"kind": {"stringValue": "usage_record", "dataType": "String"}}
    for name, data in [("stripe-webhook", webhook_event(now)), ("billing-worker-sqs", sqs_event(now)),
                       ("billing-reconcile-schedule", SCHEDULE), ("usage-worker-sqs", usage),
                       ("ai-sweeper-schedule", SCHEDULE)]:
        (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        print(f"events/{name}.json")


if __name__ == "__main__":
    main()
