#!/usr/bin/env python3
"""Writes events/*.json: API Gateway HTTP API (payload v2) events for every route family,
aimed at the demo workspace that `local-stack seed` creates.

The Authorization header carries a long-lived HS256 token signed with the PUBLIC local
development secret; it is accepted only where AUTH_HS256_SECRET is that secret (a laptop).
Usage: python3 scripts/make-events.py "$(cargo run -q -p local-stack -- token --ttl-days 36500)"
"""
import json
import sys
from pathlib import Path

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
]


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


if __name__ == "__main__":
    main()
