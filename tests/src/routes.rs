//! Every route of every HTTP function, as data: the role matrix and the cross-tenant tests both
//! run this table, and `every_declared_route_has_a_row` fails when a router gains a route that
//! is missing here.

use axum::http::Method;
use serde_json::{Value, json};

use crate::{Tenant, TestApp, TestUser};

/// A tenant and one row of every kind the routes name.
pub struct Ctx {
    pub tenant: Tenant,
    /// An AI run of the owner's.
    pub run_id: uuid::Uuid,
    /// An API key the owner made (a member key).
    pub api_key_id: uuid::Uuid,
    /// A pending team invitation the owner sent.
    pub invitation_id: uuid::Uuid,
    /// A webhook endpoint the owner registered, and the (pending) test delivery it was sent.
    pub webhook_id: uuid::Uuid,
    pub webhook_delivery_id: uuid::Uuid,
    /// A finished (failed) export of the workspace, so a new one may be requested.
    pub export_id: uuid::Uuid,
    /// Ready files of the shared deliverable and of the one kept from the client.
    pub visible_file_id: uuid::Uuid,
    pub hidden_file_id: uuid::Uuid,
    /// A requested upload of the shared deliverable whose object is in the bucket, unconfirmed.
    pub pending_file_id: uuid::Uuid,
    /// The same three on the client-visible comment and the team-only one.
    pub visible_comment_file_id: uuid::Uuid,
    pub hidden_comment_file_id: uuid::Uuid,
    pub pending_comment_file_id: uuid::Uuid,
}

impl Ctx {
    pub async fn new(app: &TestApp, label: &str) -> Self {
        let tenant = app.tenant(label).await;
        let run = app
            .post(
                &tenant.owner,
                &format!("{}/ai/runs", tenant.path()),
                json!({"tool": "proposal_draft", "input": {"brief": "A site"}}),
            )
            .await;
        let key = app
            .post(&tenant.owner, &format!("{}/api-keys", tenant.path()), json!({"name": "CI", "role": "member"}))
            .await;
        let invitation = app
            .post(
                &tenant.owner,
                &format!("{}/invitations", tenant.path()),
                json!({"email": format!("pending-{label}@invited.example"), "role": "member"}),
            )
            .await;
        let webhook = app
            .post(
                &tenant.owner,
                &format!("{}/webhooks", tenant.path()),
                json!({"url": "https://hooks.example.test/in", "events": ["project.created"]}),
            )
            .await;
        let test =
            app.post(&tenant.owner, &format!("{}/webhooks/{}/test", tenant.path(), webhook.id()), json!(null)).await;
        // Stripe holds the fixture's subscription as the database records it.
        app.stripe_account.put(&crate::stripe::SubscriptionState {
            subscription: format!("sub_{}", tenant.id.simple()),
            customer: format!("cus_{}", tenant.id.simple()),
            workspace_id: tenant.id,
            status: "active",
            lookup_key: "studio_monthly",
            period_end: crate::stripe::now() + 2_592_000,
            cancel_at_period_end: false,
        });
        let export_id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO workspace_exports (id, workspace_id, requested_by, status, attempts, error, finished_at)
             VALUES ($1, $2, $3, 'failed', 3, 'fixture', now())",
        )
        .bind(export_id)
        .bind(tenant.id)
        .bind(tenant.owner.id)
        .execute(&crate::owner_pool().await)
        .await
        .expect("an export fixture");
        let [visible_file_id, hidden_file_id, pending_file_id] = [(); 3].map(|()| uuid::Uuid::now_v7());
        let [visible_comment_file_id, hidden_comment_file_id, pending_comment_file_id] =
            [(); 3].map(|()| uuid::Uuid::now_v7());
        let on_deliverable = |id: uuid::Uuid| (Some(id), None);
        let on_comment = |id: uuid::Uuid| (None, Some(id));
        for (id, (deliverable, comment), state) in [
            (visible_file_id, on_deliverable(tenant.visible_deliverable_id), "ready"),
            (hidden_file_id, on_deliverable(tenant.hidden_deliverable_id), "ready"),
            (pending_file_id, on_deliverable(tenant.visible_deliverable_id), "pending"),
            (visible_comment_file_id, on_comment(tenant.visible_comment_id), "ready"),
            (hidden_comment_file_id, on_comment(tenant.hidden_comment_id), "ready"),
            (pending_comment_file_id, on_comment(tenant.visible_comment_id), "pending"),
        ] {
            sqlx::query(
                "INSERT INTO files (id, workspace_id, project_id, deliverable_id, comment_id, name, content_type, size_bytes,
                                    state, uploaded_by, upload_expires_at, confirmed_at)
                 VALUES ($1, $2, $3, $4, $5, 'brief.pdf', 'application/pdf', 4, $6::file_state, $7,
                         now() + interval '15 minutes', CASE WHEN $6 = 'ready' THEN now() END)",
            )
            .bind(id)
            .bind(tenant.id)
            .bind(tenant.project_id)
            .bind(deliverable)
            .bind(comment)
            .bind(state)
            .bind(tenant.owner.id)
            .execute(&crate::owner_pool().await)
            .await
            .expect("a file fixture");
        }
        crate::files::bucket().await;
        for pending in [pending_file_id, pending_comment_file_id] {
            crate::files::put_object(
                &shared::files::object_key(tenant.id, pending),
                b"%PDF".to_vec(),
                "application/pdf",
            )
            .await;
        }
        Self {
            visible_file_id,
            hidden_file_id,
            pending_file_id,
            visible_comment_file_id,
            hidden_comment_file_id,
            pending_comment_file_id,
            export_id,
            webhook_id: webhook.id(),
            webhook_delivery_id: test.body["delivery_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("a test delivery"),
            run_id: run.id(),
            api_key_id: key.id(),
            invitation_id: invitation.id(),
            tenant,
        }
    }
}

pub type Call = (Method, String, Option<Value>);

pub struct Row {
    pub method: Method,
    /// The route as declared in its router.
    pub pattern: &'static str,
    pub request: fn(&Ctx) -> Call,
    /// Expected status for owner, admin, member, viewer, client contact, outsider.
    pub expect: [u16; 6],
    /// Destructive rows run on a workspace of their own, so rows stay independent.
    pub fresh: bool,
}

pub const ROLES: [&str; 6] = ["owner", "admin", "member", "viewer", "contact", "outsider"];

fn p(t: &Tenant) -> String {
    t.path()
}

fn files_of(c: &Ctx, deliverable: uuid::Uuid) -> String {
    format!("{}/deliverables/{deliverable}/files", c.tenant.project_path())
}

fn comment_files_of(c: &Ctx, comment: uuid::Uuid) -> String {
    format!("{}/comments/{comment}/files", c.tenant.project_path())
}

pub fn rows() -> Vec<Row> {
    use Method as M;
    vec![
        // ---- workspaces function
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}",
            request: |c| (M::GET, p(&c.tenant), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}",
            request: |c| (M::PUT, p(&c.tenant), Some(json!({"name": "Renamed"}))),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}",
            request: |c| (M::DELETE, p(&c.tenant), None),
            expect: [204, 403, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/members",
            request: |c| (M::GET, format!("{}/members", p(&c.tenant)), None),
            expect: [200, 200, 200, 200, 403, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/members/{user_id}",
            request: |c| {
                (M::PUT, format!("{}/members/{}", p(&c.tenant), c.tenant.viewer.id), Some(json!({"role": "member"})))
            },
            expect: [200, 200, 403, 403, 403, 404],
            fresh: true,
        },
        // Demoting the only owner: owners hit the last-owner rule, admins may not touch owners.
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/members/{user_id}",
            request: |c| {
                (M::PUT, format!("{}/members/{}", p(&c.tenant), c.tenant.owner.id), Some(json!({"role": "admin"})))
            },
            expect: [409, 403, 403, 403, 403, 404],
            fresh: false,
        },
        // Removing the viewer: managers may, the viewer may leave, others may not.
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/members/{user_id}",
            request: |c| (M::DELETE, format!("{}/members/{}", p(&c.tenant), c.tenant.viewer.id), None),
            expect: [204, 204, 403, 204, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/clients",
            request: |c| (M::GET, format!("{}/clients", p(&c.tenant)), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/clients",
            request: |c| (M::POST, format!("{}/clients", p(&c.tenant)), Some(json!({"name": "Globex"}))),
            expect: [201, 201, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/clients/{client_id}",
            request: |c| (M::GET, format!("{}/clients/{}", p(&c.tenant), c.tenant.client_id), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/clients/{client_id}",
            request: |c| {
                (M::PUT, format!("{}/clients/{}", p(&c.tenant), c.tenant.client_id), Some(json!({"name": "Acme Inc"})))
            },
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/clients/{client_id}",
            request: |c| (M::DELETE, format!("{}/clients/{}", p(&c.tenant), c.tenant.client_id), None),
            expect: [204, 204, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/clients/{client_id}/contacts",
            request: |c| (M::GET, format!("{}/clients/{}/contacts", p(&c.tenant), c.tenant.client_id), None),
            expect: [200, 200, 200, 200, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/clients/{client_id}/contacts/{user_id}",
            request: |c| {
                (
                    M::DELETE,
                    format!("{}/clients/{}/contacts/{}", p(&c.tenant), c.tenant.client_id, c.tenant.contact.id),
                    None,
                )
            },
            expect: [204, 204, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/billing",
            request: |c| (M::GET, format!("{}/billing", p(&c.tenant)), None),
            expect: [200, 200, 200, 200, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/audit-log",
            request: |c| (M::GET, format!("{}/audit-log", p(&c.tenant)), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/exports",
            request: |c| (M::GET, format!("{}/exports", p(&c.tenant)), None),
            expect: [200, 403, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/exports",
            request: |c| (M::POST, format!("{}/exports", p(&c.tenant)), None),
            expect: [202, 403, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/exports/{export_id}",
            request: |c| (M::GET, format!("{}/exports/{}", p(&c.tenant), c.export_id), None),
            expect: [200, 403, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/exports/{export_id}/files/{file_id}",
            // The fixture's export failed: no archive holds the file (the exports test follows
            // a written one).
            request: |c| {
                (M::GET, format!("{}/exports/{}/files/{}", p(&c.tenant), c.export_id, c.visible_file_id), None)
            },
            expect: [404, 403, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/api-keys",
            request: |c| (M::GET, format!("{}/api-keys", p(&c.tenant)), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/api-keys",
            request: |c| {
                (M::POST, format!("{}/api-keys", p(&c.tenant)), Some(json!({"name": "Zapier", "role": "viewer"})))
            },
            expect: [201, 201, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/api-keys/{key_id}",
            request: |c| (M::DELETE, format!("{}/api-keys/{}", p(&c.tenant), c.api_key_id), None),
            expect: [204, 204, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/invitations",
            request: |c| (M::GET, format!("{}/invitations", p(&c.tenant)), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/invitations",
            request: |c| {
                (
                    M::POST,
                    format!("{}/invitations", p(&c.tenant)),
                    Some(json!({"email": "new@invited.example", "role": "viewer"})),
                )
            },
            expect: [201, 201, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/clients/{client_id}/invitations",
            request: |c| {
                let path = format!("{}/clients/{}/invitations", p(&c.tenant), c.tenant.client_id);
                (M::POST, path, Some(json!({"email": "portal@invited.example"})))
            },
            expect: [201, 201, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/invitations/{invitation_id}/resend",
            request: |c| (M::POST, format!("{}/invitations/{}/resend", p(&c.tenant), c.invitation_id), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/invitations/{invitation_id}",
            request: |c| (M::DELETE, format!("{}/invitations/{}", p(&c.tenant), c.invitation_id), None),
            expect: [204, 204, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/me",
            // The owner is the last owner of a workspace with members; everyone else can leave.
            request: |_| (M::DELETE, "/v1/me".into(), None),
            expect: [409, 204, 204, 204, 204, 204],
            fresh: true,
        },
        Row {
            method: M::POST,
            pattern: "/v1/invitations/accept",
            // A well-formed token no invitation has: nobody learns anything from it.
            request: |_| {
                (M::POST, "/v1/invitations/accept".into(), Some(json!({"token": format!("inv_{}", "A".repeat(43))})))
            },
            expect: [404, 404, 404, 404, 404, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/activity",
            request: |c| (M::GET, format!("{}/activity", p(&c.tenant)), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/webhooks",
            request: |c| (M::GET, format!("{}/webhooks", p(&c.tenant)), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/webhooks",
            request: |c| {
                let body = json!({"url": "https://hooks.example.test/other", "events": ["comment.created"], "format": "slack"});
                (M::POST, format!("{}/webhooks", p(&c.tenant)), Some(body))
            },
            expect: [201, 201, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}",
            request: |c| (M::GET, format!("{}/webhooks/{}", p(&c.tenant), c.webhook_id), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::PATCH,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}",
            request: |c| {
                (
                    M::PATCH,
                    format!("{}/webhooks/{}", p(&c.tenant), c.webhook_id),
                    Some(json!({"description": "CRM sync"})),
                )
            },
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}",
            request: |c| (M::DELETE, format!("{}/webhooks/{}", p(&c.tenant), c.webhook_id), None),
            expect: [204, 204, 403, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/rotate-secret",
            request: |c| {
                (M::POST, format!("{}/webhooks/{}/rotate-secret", p(&c.tenant), c.webhook_id), Some(json!({})))
            },
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/test",
            request: |c| (M::POST, format!("{}/webhooks/{}/test", p(&c.tenant), c.webhook_id), None),
            expect: [202, 202, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/deliveries",
            request: |c| (M::GET, format!("{}/webhooks/{}/deliveries", p(&c.tenant), c.webhook_id), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}",
            request: |c| {
                let path = format!("{}/webhooks/{}/deliveries/{}", p(&c.tenant), c.webhook_id, c.webhook_delivery_id);
                (M::GET, path, None)
            },
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
            request: |c| {
                let path =
                    format!("{}/webhooks/{}/deliveries/{}/retry", p(&c.tenant), c.webhook_id, c.webhook_delivery_id);
                (M::POST, path, None)
            },
            expect: [202, 202, 403, 403, 403, 404],
            fresh: false,
        },
        // ---- checkout and portal functions (the fixture's workspace already has a live subscription)
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/billing/checkout",
            request: |c| {
                (
                    M::POST,
                    format!("{}/billing/checkout", p(&c.tenant)),
                    Some(
                        json!({"plan": "pro", "success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/cancel"}),
                    ),
                )
            },
            expect: [409, 409, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/billing/customer",
            request: |c| (M::GET, format!("{}/billing/customer", p(&c.tenant)), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/billing/customer",
            request: |c| {
                (
                    M::PUT,
                    format!("{}/billing/customer", p(&c.tenant)),
                    Some(
                        json!({"name": "Acme GmbH", "address": {"line1": "Hauptstr. 1", "city": "Berlin", "country": "DE"}}),
                    ),
                )
            },
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/billing/customer/tax-ids",
            request: |c| {
                (
                    M::POST,
                    format!("{}/billing/customer/tax-ids", p(&c.tenant)),
                    Some(json!({"type": "eu_vat", "value": "DE123456789"})),
                )
            },
            expect: [201, 201, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/billing/customer/tax-ids/{tax_id}",
            request: |c| (M::DELETE, format!("{}/billing/customer/tax-ids/txi_fixture", p(&c.tenant)), None),
            expect: [204, 204, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/billing/ai-overage",
            request: |c| (M::GET, format!("{}/billing/ai-overage", p(&c.tenant)), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/billing/ai-overage",
            request: |c| (M::PUT, format!("{}/billing/ai-overage", p(&c.tenant)), Some(json!({"cap": 5000}))),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/invoices",
            request: |c| (M::GET, format!("{}/invoices", p(&c.tenant)), None),
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/billing/portal",
            request: |c| {
                (
                    M::POST,
                    format!("{}/billing/portal", p(&c.tenant)),
                    Some(json!({"return_url": "https://app.example.test/settings"})),
                )
            },
            expect: [200, 200, 403, 403, 403, 404],
            fresh: false,
        },
        // A downgrade from the fixture's Studio plan while it holds an API key: refused, before Stripe.
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/billing/subscription/preview",
            request: |c| {
                (M::POST, format!("{}/billing/subscription/preview", p(&c.tenant)), Some(json!({"plan": "pro"})))
            },
            expect: [409, 409, 403, 403, 403, 404],
            fresh: false,
        },
        // A token this API never issued: refused for managers (after their access is checked).
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/billing/subscription",
            request: |c| {
                (
                    M::POST,
                    format!("{}/billing/subscription", p(&c.tenant)),
                    Some(json!({"preview_token": "eyJub3QiOiJzaWduZWQifQ.c2lnbmF0dXJl"})),
                )
            },
            expect: [422, 422, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/billing/subscription/cancel",
            request: |c| (M::POST, format!("{}/billing/subscription/cancel", p(&c.tenant)), None),
            expect: [202, 202, 403, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/billing/subscription/resume",
            request: |c| (M::POST, format!("{}/billing/subscription/resume", p(&c.tenant)), None),
            expect: [202, 202, 403, 403, 403, 404],
            fresh: false,
        },
        // ---- ai-runs function: owners, admins and members run tools; everyone in the team reads runs
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/ai/runs",
            request: |c| {
                (
                    M::POST,
                    format!("{}/ai/runs", p(&c.tenant)),
                    Some(json!({"tool": "project_status_summary", "project_id": c.tenant.project_id})),
                )
            },
            expect: [201, 201, 201, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/ai/runs",
            request: |c| (M::GET, format!("{}/ai/runs", p(&c.tenant)), None),
            expect: [200, 200, 200, 200, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/ai/runs/{run_id}",
            request: |c| (M::GET, format!("{}/ai/runs/{}", p(&c.tenant), c.run_id), None),
            expect: [200, 200, 200, 200, 403, 404],
            fresh: false,
        },
        // ---- projects function
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects",
            request: |c| (M::GET, format!("{}/projects", p(&c.tenant)), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects",
            request: |c| (M::POST, format!("{}/projects", p(&c.tenant)), Some(json!({"name": "New"}))),
            expect: [201, 201, 201, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}",
            request: |c| (M::GET, c.tenant.project_path(), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        // The internal project is not the client's: its contact does not see it.
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}",
            request: |c| (M::GET, format!("{}/projects/{}", p(&c.tenant), c.tenant.internal_project_id), None),
            expect: [200, 200, 200, 200, 404, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}",
            request: |c| {
                (
                    M::PUT,
                    c.tenant.project_path(),
                    Some(json!({"name": "Client site v2", "client_id": c.tenant.client_id})),
                )
            },
            expect: [200, 200, 200, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}",
            request: |c| (M::DELETE, c.tenant.project_path(), None),
            expect: [204, 204, 204, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones",
            request: |c| (M::GET, format!("{}/milestones", c.tenant.project_path()), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones",
            request: |c| (M::POST, format!("{}/milestones", c.tenant.project_path()), Some(json!({"title": "Launch"}))),
            expect: [201, 201, 201, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones/{item_id}",
            request: |c| (M::GET, format!("{}/milestones/{}", c.tenant.project_path(), c.tenant.milestone_id), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones/{item_id}",
            request: |c| {
                (
                    M::PUT,
                    format!("{}/milestones/{}", c.tenant.project_path(), c.tenant.milestone_id),
                    Some(json!({"title": "Design", "status": "done"})),
                )
            },
            expect: [200, 200, 200, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/milestones/{item_id}",
            request: |c| (M::DELETE, format!("{}/milestones/{}", c.tenant.project_path(), c.tenant.milestone_id), None),
            expect: [204, 204, 204, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables",
            request: |c| (M::GET, format!("{}/deliverables", c.tenant.project_path()), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables",
            request: |c| (M::POST, format!("{}/deliverables", c.tenant.project_path()), Some(json!({"title": "Logo"}))),
            expect: [201, 201, 201, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}",
            request: |c| {
                (M::GET, format!("{}/deliverables/{}", c.tenant.project_path(), c.tenant.visible_deliverable_id), None)
            },
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}",
            request: |c| {
                (M::GET, format!("{}/deliverables/{}", c.tenant.project_path(), c.tenant.hidden_deliverable_id), None)
            },
            expect: [200, 200, 200, 200, 404, 404],
            fresh: false,
        },
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}",
            request: |c| {
                (
                    M::PUT,
                    format!("{}/deliverables/{}", c.tenant.project_path(), c.tenant.visible_deliverable_id),
                    Some(json!({"title": "Mockups v2", "client_visible": true, "status": "in_review"})),
                )
            },
            expect: [200, 200, 200, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}",
            request: |c| {
                (
                    M::DELETE,
                    format!("{}/deliverables/{}", c.tenant.project_path(), c.tenant.hidden_deliverable_id),
                    None,
                )
            },
            expect: [204, 204, 204, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files",
            request: |c| (M::GET, files_of(c, c.tenant.visible_deliverable_id), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files",
            request: |c| (M::GET, files_of(c, c.tenant.hidden_deliverable_id), None),
            expect: [200, 200, 200, 200, 404, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files",
            request: |c| {
                (
                    M::POST,
                    files_of(c, c.tenant.visible_deliverable_id),
                    Some(json!({"name": "cut.mp4", "content_type": "video/mp4", "size": 2048})),
                )
            },
            expect: [201, 201, 201, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files/{file_id}/confirm",
            request: |c| {
                (
                    M::POST,
                    format!("{}/{}/confirm", files_of(c, c.tenant.visible_deliverable_id), c.pending_file_id),
                    None,
                )
            },
            expect: [200, 200, 200, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files/{file_id}/download",
            request: |c| {
                (
                    M::GET,
                    format!("{}/{}/download", files_of(c, c.tenant.visible_deliverable_id), c.visible_file_id),
                    None,
                )
            },
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files/{file_id}/download",
            request: |c| {
                (M::GET, format!("{}/{}/download", files_of(c, c.tenant.hidden_deliverable_id), c.hidden_file_id), None)
            },
            expect: [200, 200, 200, 200, 404, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/deliverables/{item_id}/files/{file_id}",
            request: |c| {
                (M::DELETE, format!("{}/{}", files_of(c, c.tenant.visible_deliverable_id), c.visible_file_id), None)
            },
            expect: [204, 204, 204, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files",
            request: |c| (M::GET, comment_files_of(c, c.tenant.visible_comment_id), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files",
            request: |c| (M::GET, comment_files_of(c, c.tenant.hidden_comment_id), None),
            expect: [200, 200, 200, 200, 404, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files",
            request: |c| {
                (
                    M::POST,
                    comment_files_of(c, c.tenant.visible_comment_id),
                    Some(json!({"name": "cut.mp4", "content_type": "video/mp4", "size": 2048})),
                )
            },
            expect: [201, 201, 201, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files/{file_id}/confirm",
            request: |c| {
                (
                    M::POST,
                    format!(
                        "{}/{}/confirm",
                        comment_files_of(c, c.tenant.visible_comment_id),
                        c.pending_comment_file_id
                    ),
                    None,
                )
            },
            expect: [200, 200, 200, 403, 403, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files/{file_id}/download",
            request: |c| {
                (
                    M::GET,
                    format!(
                        "{}/{}/download",
                        comment_files_of(c, c.tenant.visible_comment_id),
                        c.visible_comment_file_id
                    ),
                    None,
                )
            },
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files/{file_id}/download",
            request: |c| {
                (
                    M::GET,
                    format!(
                        "{}/{}/download",
                        comment_files_of(c, c.tenant.hidden_comment_id),
                        c.hidden_comment_file_id
                    ),
                    None,
                )
            },
            expect: [200, 200, 200, 200, 404, 404],
            fresh: false,
        },
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}/files/{file_id}",
            request: |c| {
                (
                    M::DELETE,
                    format!("{}/{}", comment_files_of(c, c.tenant.visible_comment_id), c.visible_comment_file_id),
                    None,
                )
            },
            expect: [204, 204, 204, 403, 403, 404],
            fresh: true,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments",
            request: |c| (M::GET, format!("{}/comments", c.tenant.project_path()), None),
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments",
            request: |c| {
                (M::POST, format!("{}/comments", c.tenant.project_path()), Some(json!({"body": "Looks good"})))
            },
            expect: [201, 201, 201, 403, 201, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}",
            request: |c| {
                (M::GET, format!("{}/comments/{}", c.tenant.project_path(), c.tenant.visible_comment_id), None)
            },
            expect: [200, 200, 200, 200, 200, 404],
            fresh: false,
        },
        Row {
            method: M::GET,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}",
            request: |c| (M::GET, format!("{}/comments/{}", c.tenant.project_path(), c.tenant.hidden_comment_id), None),
            expect: [200, 200, 200, 200, 404, 404],
            fresh: false,
        },
        // The owner wrote it: only the author edits.
        Row {
            method: M::PUT,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}",
            request: |c| {
                (
                    M::PUT,
                    format!("{}/comments/{}", c.tenant.project_path(), c.tenant.visible_comment_id),
                    Some(json!({"body": "Edited", "client_visible": true})),
                )
            },
            expect: [200, 403, 403, 403, 403, 404],
            fresh: false,
        },
        // Owners and admins moderate; others may delete only their own.
        Row {
            method: M::DELETE,
            pattern: "/v1/workspaces/{workspace_id}/projects/{project_id}/comments/{item_id}",
            request: |c| {
                (M::DELETE, format!("{}/comments/{}", c.tenant.project_path(), c.tenant.visible_comment_id), None)
            },
            expect: [204, 204, 403, 403, 403, 404],
            fresh: true,
        },
        // ---- routes without a workspace in the path
        Row {
            method: M::GET,
            pattern: "/v1/workspaces",
            request: |_| (M::GET, "/v1/workspaces".into(), None),
            expect: [200; 6],
            fresh: false,
        },
        Row {
            method: M::POST,
            pattern: "/v1/workspaces",
            request: |_| (M::POST, "/v1/workspaces".into(), Some(json!({"name": "Mine"}))),
            expect: [201; 6],
            fresh: false,
        },
    ]
}

/// The user who plays `role` for a tenant; the outsider is given by the caller.
pub fn actor<'a>(ctx: &'a Ctx, role: usize, outsider: &'a TestUser) -> &'a TestUser {
    let t = &ctx.tenant;
    [&t.owner, &t.admin, &t.member, &t.viewer, &t.contact, outsider][role]
}
