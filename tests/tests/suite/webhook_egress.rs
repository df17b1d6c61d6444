//! The outgoing webhook client against a local receiver: signed as the Standard Webhooks
//! specification says (checked here by a separate verifier), no redirect followed, short
//! timeouts, a capped answer, and nothing that resolves to a private address reached.

use std::time::Duration;

use reqwest::Url;
use shared::webhooks::egress::{Egress, EgressError, EgressPolicy, KEPT_BODY_BYTES};
use shared::webhooks::signature::{SigningSecret, headers};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn local(timeout: Duration) -> Egress {
    Egress::new(EgressPolicy { allow_loopback_http: true, timeout, ..EgressPolicy::default() }).unwrap()
}

/// A receiver's own check, written from the specification, not with the sender's code.
fn verify(secret_text: &str, id: &str, timestamp: &str, body: &[u8], signature_header: &str) -> bool {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let key = base64::engine::general_purpose::STANDARD.decode(secret_text.trim_start_matches("whsec_")).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signature_header.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

#[tokio::test]
async fn a_delivery_is_signed_as_the_specification_says() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&receiver).await;
    let secret = SigningSecret::generate().unwrap();
    let body = br#"{"type":"project.created","data":{"id":"p1"}}"#.to_vec();
    let signed = headers("msg_1", 1_795_000_000, &body, &[&secret]);
    let url = Url::parse(&format!("{}/hook", receiver.uri())).unwrap();
    let answer = local(Duration::from_secs(5)).post(&url, &signed, body.clone()).await.unwrap();
    assert_eq!(answer.status, 204);
    let received = &receiver.received_requests().await.unwrap()[0];
    let header = |name: &str| received.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(received.body, body);
    assert_eq!(header("content-type"), "application/json");
    assert!(verify(
        &secret.to_text(),
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &body,
        &header("webhook-signature")
    ));
    assert!(!verify(
        &SigningSecret::generate().unwrap().to_text(),
        "msg_1",
        "1795000000",
        &body,
        &header("webhook-signature")
    ));
}

#[tokio::test]
async fn redirects_are_not_followed_slow_receivers_time_out_and_answers_are_capped() {
    let receiver = MockServer::start().await;
    Mock::given(path("/moved"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/elsewhere"))
        .mount(&receiver)
        .await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&receiver)
        .await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(100_000)))
        .mount(&receiver)
        .await;
    let egress = local(Duration::from_millis(500));
    let url = |p: &str| Url::parse(&format!("{}{p}", receiver.uri())).unwrap();
    assert_eq!(egress.post(&url("/moved"), &[], b"{}".to_vec()).await.unwrap().status, 302);
    let hits = receiver.received_requests().await.unwrap();
    assert!(hits.iter().all(|r| r.url.path() != "/elsewhere"), "a redirect was followed");
    assert!(matches!(egress.post(&url("/slow"), &[], b"{}".to_vec()).await, Err(EgressError::Http(_))));
    assert_eq!(egress.post(&url("/big"), &[], b"{}".to_vec()).await.unwrap().body.len(), KEPT_BODY_BYTES);
}

/// Without the local-development allowance, a name that resolves to loopback is refused when
/// connecting (the check is the connection's own resolution), as are private literals.
#[tokio::test]
async fn names_and_literals_that_reach_private_addresses_are_refused() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let port = receiver.address().port();
    let strict = Egress::new(EgressPolicy::default()).unwrap();
    let refused =
        strict.post(&Url::parse(&format!("https://localhost:{port}/hook")).unwrap(), &[], b"{}".to_vec()).await;
    let error = refused.err().map(|e| format!("{e:?}")).unwrap_or_default();
    assert!(error.contains("not a public address") || error.contains("Forbidden"), "{error}");
    for literal in [
        "https://127.0.0.1/",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
    ] {
        let answer = strict.post(&Url::parse(literal).unwrap(), &[], b"{}".to_vec()).await;
        assert!(matches!(answer, Err(EgressError::Forbidden(_))), "{literal}: {answer:?}");
    }
    assert!(receiver.received_requests().await.unwrap().is_empty(), "a refused delivery reached the receiver");
}

/// Names an attacker controls, resolving to the metadata service, the VPC, IPv6 loopback, an
/// IPv4-mapped loopback, or a public address alongside a private one: each refused while
/// connecting, before a byte is sent.
#[tokio::test]
async fn names_resolving_to_private_metadata_or_mapped_addresses_are_refused_at_connect() {
    use std::net::{IpAddr, SocketAddr};
    use std::sync::Arc;

    use reqwest::dns::{Addrs, Name, Resolve, Resolving};

    struct Table;
    impl Resolve for Table {
        fn resolve(&self, name: Name) -> Resolving {
            let addresses: Vec<IpAddr> = match name.as_str() {
                "metadata.attacker.test" => vec!["169.254.169.254".parse().unwrap()],
                "vpc.attacker.test" => vec!["10.0.3.7".parse().unwrap()],
                "loopback.attacker.test" => vec!["127.0.0.1".parse().unwrap()],
                "v6.attacker.test" => vec!["::1".parse().unwrap()],
                "mapped.attacker.test" => vec!["::ffff:127.0.0.1".parse().unwrap()],
                "mixed.attacker.test" => vec!["93.184.216.34".parse().unwrap(), "192.168.0.10".parse().unwrap()],
                _ => vec![],
            };
            Box::pin(async move { Ok(Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0))) as Addrs) })
        }
    }

    let egress = Egress::with_resolver(EgressPolicy::default(), Arc::new(Table)).unwrap();
    for host in ["metadata", "vpc", "loopback", "v6", "mapped", "mixed"] {
        let url = Url::parse(&format!("https://{host}.attacker.test/hook")).unwrap();
        let error = egress.post(&url, &[], b"{}".to_vec()).await.expect_err(host);
        let chain = format!("{error:?}");
        assert!(chain.contains("Forbidden"), "{host}: {chain}");
    }
}
