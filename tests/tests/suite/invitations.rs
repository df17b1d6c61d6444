//! Invitations: to the team and to a client's portal, for people without an account; accepted
//! once by the invited address; every refusal with its own problem; pending invitations count
//! against the member limit exactly under concurrency; the mail is in the outbox only when the
//! invitation committed.

use axum::http::StatusCode;
use integration_tests::{TestApp, TestUser, count, mint, owner_pool, service_pool};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// Someone who has never used the product, signed in with `email`.
fn newcomer(email: &str) -> TestUser {
    let subject = format!("newcomer-{}", Uuid::new_v4().simple());
    TestUser {
        id: shared::auth::user_id_for(integration_tests::HS256_ISSUER, &subject),
        token: mint(&subject, Some(email), Duration::from_secs(3600)),
        subject,
        email: email.to_owned(),
    }
}

/// The token the newest invitation mail to `email` carries (from the outbox).
async fn mailed_token(email: &str) -> (String, Value) {
    let (template, params): (String, Value) = sqlx::query_as(
        "SELECT template, params FROM emails WHERE lower(to_address) = lower($1) ORDER BY id DESC LIMIT 1",
    )
    .bind(email)
    .fetch_one(&service_pool().await)
    .await
    .unwrap();
    (params["token"].as_str().unwrap().to_owned(), json!({"template": template, "params": params}))
}

fn unique_email(label: &str) -> String {
    format!("{label}-{}@Invited.Example", Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_person_without_an_account_is_invited_accepts_and_is_a_member() {
    let app = TestApp::new().await;
    let t = app.tenant("invite").await;
    let email = unique_email("colleague");
    let invited =
        app.post(&t.admin, &format!("{}/invitations", t.path()), json!({"email": email, "role": "member"})).await;
    let body = invited.expect(StatusCode::CREATED);
    assert_eq!((body["role"].as_str(), body["email"].as_str()), (Some("member"), Some(email.as_str())));
    assert!(body.get("token").is_none(), "the token goes by mail only");
    let (token, mail) = mailed_token(&email).await;
    assert_eq!(mail["template"], "team_invitation");
    assert_eq!(mail["params"]["workspace"], "invite studio", "{mail}");
    // Only the hash is on the invitation.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM invitations WHERE id = $1")
        .bind(invited.id())
        .fetch_one(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!(stored, shared::auth::api_key::hash_token(&token).to_vec());
    let listed = app.get(&t.owner, &format!("{}/invitations", t.path())).await;
    assert!(listed.body["items"].as_array().unwrap().iter().any(|i| i["id"] == json!(invited.id())));

    // The address matches case-insensitively.
    let person = newcomer(&email.to_lowercase());
    let accepted = app.post(&person, "/v1/invitations/accept", json!({"token": token})).await;
    assert_eq!(accepted.expect(StatusCode::OK)["workspace_id"], json!(t.id));
    let members = app.get(&t.owner, &format!("{}/members?limit=100", t.path())).await;
    let joined = members.body["items"].as_array().unwrap().iter().find(|m| m["user_id"] == json!(person.id)).cloned();
    assert_eq!(joined.unwrap()["role"], "member");
    // Accepting twice is harmless; the invitation is no longer pending.
    app.post(&person, "/v1/invitations/accept", json!({"token": token})).await.expect(StatusCode::OK);
    let listed = app.get(&t.owner, &format!("{}/invitations", t.path())).await;
    assert!(listed.body["items"].as_array().unwrap().iter().all(|i| i["id"] != json!(invited.id())));
    // And the new member reads the workspace.
    app.get(&person, &format!("{}/projects", t.path())).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_portal_invitation_makes_a_client_contact() {
    let app = TestApp::new().await;
    let t = app.tenant("invite-portal").await;
    let email = unique_email("client");
    let path = format!("{}/clients/{}/invitations", t.path(), t.client_id);
    app.post(&t.owner, &path, json!({"email": email})).await.expect(StatusCode::CREATED);
    let (token, mail) = mailed_token(&email).await;
    assert_eq!(mail["template"], "portal_invitation");
    assert_eq!(mail["params"]["client"], "Acme");
    let person = newcomer(&email);
    let accepted = app.post(&person, "/v1/invitations/accept", json!({"token": token})).await;
    assert_eq!(accepted.expect(StatusCode::OK)["client_id"], json!(t.client_id));
    let projects = app.get(&person, &format!("{}/projects", t.path())).await;
    let ids: Vec<Value> =
        projects.expect(StatusCode::OK)["items"].as_array().unwrap().iter().map(|p| p["id"].clone()).collect();
    assert_eq!(ids, [json!(t.project_id)], "the client's project only");
}

#[tokio::test]
async fn every_refusal_has_its_own_problem() {
    let app = TestApp::new().await;
    let t = app.tenant("invite-refusals").await;
    let invite = |email: String, role: &'static str| {
        let app = &app;
        let path = format!("{}/invitations", t.path());
        let owner = &t.owner;
        async move { app.post(owner, &path, json!({"email": email, "role": role})).await }
    };
    let accept = |person: &TestUser, token: &str| {
        let app = &app;
        let (person, token) = (person.clone(), token.to_owned());
        async move { app.post(&person, "/v1/invitations/accept", json!({"token": token})).await }
    };

    // The wrong address.
    let email = unique_email("mismatch");
    invite(email.clone(), "member").await.expect(StatusCode::CREATED);
    let (token, _) = mailed_token(&email).await;
    let stranger = newcomer(&unique_email("stranger"));
    assert_eq!(accept(&stranger, &token).await.problem(StatusCode::FORBIDDEN), "invitation_email_mismatch");
    // A sign-in without an e-mail.
    let anonymous = TestUser { token: mint("no-mail", None, Duration::from_secs(60)), ..newcomer("x@y.example") };
    assert_eq!(accept(&anonymous, &token).await.status, StatusCode::FORBIDDEN);
    // Used by the invited person, then presented by another who has the same address.
    accept(&newcomer(&email), &token).await.expect(StatusCode::OK);
    assert_eq!(accept(&newcomer(&email), &token).await.problem(StatusCode::CONFLICT), "invitation_used");

    // Revoked.
    let email = unique_email("revoked");
    let revoked = invite(email.clone(), "viewer").await;
    let (token, _) = mailed_token(&email).await;
    app.delete(&t.owner, &format!("{}/invitations/{}", t.path(), revoked.id())).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(accept(&newcomer(&email), &token).await.problem(StatusCode::GONE), "invitation_revoked");

    // Expired.
    let email = unique_email("expired");
    let expired = invite(email.clone(), "viewer").await;
    let (token, _) = mailed_token(&email).await;
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(expired.id())
        .execute(&owner_pool().await)
        .await
        .unwrap();
    assert_eq!(accept(&newcomer(&email), &token).await.problem(StatusCode::GONE), "invitation_expired");
    // An expired invitation does not block a new one to the same address.
    invite(email.clone(), "viewer").await.expect(StatusCode::CREATED);

    // Resent: the old token is dead, the new one works.
    let email = unique_email("resent");
    let pending = invite(email.clone(), "member").await;
    let (old, _) = mailed_token(&email).await;
    app.post(&t.owner, &format!("{}/invitations/{}/resend", t.path(), pending.id()), json!({}))
        .await
        .expect(StatusCode::OK);
    let (new, _) = mailed_token(&email).await;
    assert_ne!(old, new);
    let person = newcomer(&email);
    assert_eq!(accept(&person, &old).await.problem(StatusCode::NOT_FOUND), "not_found");
    accept(&person, &new).await.expect(StatusCode::OK);

    // Unknown and malformed tokens.
    let nobody = newcomer(&unique_email("nobody"));
    assert_eq!(accept(&nobody, &format!("inv_{}", "B".repeat(43))).await.problem(StatusCode::NOT_FOUND), "not_found");
    for garbage in ["", "inv_short", "sak_0000000000000000000000000000000000000000000000000000000000000000000000000"] {
        let refused = accept(&nobody, garbage).await;
        assert_eq!(refused.problem(StatusCode::UNPROCESSABLE_ENTITY), "validation_failed", "{garbage}");
    }

    // Twice to the same address while pending; to someone already a member; admins cannot invite owners.
    let email = unique_email("twice");
    invite(email.clone(), "member").await.expect(StatusCode::CREATED);
    assert_eq!(invite(email, "member").await.problem(StatusCode::CONFLICT), "invitation_pending");
    assert_eq!(invite(t.member.email.to_uppercase(), "viewer").await.problem(StatusCode::CONFLICT), "already_member");
    let owner_by_admin = app
        .post(&t.admin, &format!("{}/invitations", t.path()), json!({"email": unique_email("boss"), "role": "owner"}))
        .await;
    assert_eq!(owner_by_admin.status, StatusCode::FORBIDDEN);
    let owner_by_owner = invite(unique_email("boss"), "owner").await;
    owner_by_owner.expect(StatusCode::CREATED);
    for (body, field) in [
        (json!({"email": "not-an-address", "role": "member"}), "email"),
        (json!({"email": "a@b.example", "role": "king"}), ""),
    ] {
        let refused = app.post(&t.owner, &format!("{}/invitations", t.path()), body.clone()).await;
        assert!(refused.status.is_client_error(), "{body}");
        if !field.is_empty() {
            assert_eq!(refused.body["errors"][0]["field"], field);
        }
    }
}

/// Pending invitations take seats: at a limit with one seat left, of five concurrent
/// invitations exactly one is sent, and the refused ones leave no mail behind.
#[tokio::test]
async fn pending_invitations_count_against_the_member_limit_exactly() {
    let app = TestApp::new().await;
    let owner = app.user("invite-limit").await;
    let workspace = app.workspace(&owner, "Free seats").await; // free: 2 members, the owner is one
    let path = format!("/v1/workspaces/{workspace}/invitations");
    let calls =
        (0..5).map(|i| app.post(&owner, &path, json!({"email": format!("seat{i}@free.example"), "role": "member"})));
    let responses = futures::future::join_all(calls).await;
    let created = responses.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    for refused in responses.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
    }
    assert_eq!(count(&service_pool().await, "emails", workspace).await, 1, "a refused invitation left a mail");
    // The portal is a paid feature: no portal invitations on the free plan.
    let client = app.post(&owner, &format!("/v1/workspaces/{workspace}/clients"), json!({"name": "C"})).await;
    let portal = format!("/v1/workspaces/{workspace}/clients/{}/invitations", client.id());
    let refused = app.post(&owner, &portal, json!({"email": "portal@free.example"})).await;
    assert_eq!(refused.problem(StatusCode::PAYMENT_REQUIRED), "feature_not_in_plan");
}

/// A portal invitation takes no seat, even on a full plan.
#[tokio::test]
async fn a_portal_invitation_takes_no_seat() {
    let app = TestApp::new().await;
    let t = app.tenant("invite-seatless").await;
    // Fill the studio plan's 50 seats with pending team invitations.
    let members = count(&service_pool().await, "workspace_members", t.id).await;
    for i in members..50 {
        let body = json!({"email": format!("seat{i}@full.example"), "role": "viewer"});
        app.post(&t.owner, &format!("{}/invitations", t.path()), body).await.expect(StatusCode::CREATED);
    }
    let full = app
        .post(
            &t.owner,
            &format!("{}/invitations", t.path()),
            json!({"email": "one-more@full.example", "role": "viewer"}),
        )
        .await;
    assert_eq!(full.problem(StatusCode::PAYMENT_REQUIRED), "plan_limit_reached");
    let portal = format!("{}/clients/{}/invitations", t.path(), t.client_id);
    app.post(&t.owner, &portal, json!({"email": "client@full.example"})).await.expect(StatusCode::CREATED);
}
