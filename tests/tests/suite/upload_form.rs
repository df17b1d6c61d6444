//! A browser's upload straight to S3 through the signed POST form (`shared::files::upload_form`):
//! real bytes posted as multipart/form-data to moto's S3, read back as they were sent.

use reqwest::multipart::{Form, Part};
use shared::files::upload_form::{SigningCredentials, Upload, sign};

#[tokio::test]
async fn a_browser_uploads_real_bytes_through_the_signed_form() {
    let bucket = integration_tests::create_bucket("upload-form").await;
    let config = integration_tests::local_aws().await;
    let endpoint = config.endpoint_url().expect("moto's endpoint").trim_end_matches('/').to_owned();
    let credentials = SigningCredentials {
        access_key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "testing".into()),
        secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "testing".into()).into(),
        session_token: None,
    };
    let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let key = "workspaces/w1/files/f1";
    let now = time::OffsetDateTime::now_utc();
    let upload = Upload {
        bucket: &bucket,
        key,
        content_type: "application/pdf",
        size: bytes.len() as u64,
        expires_at: now + time::Duration::minutes(5),
        tagging: Some(shared::files::PENDING_TAGGING),
    };
    let form = sign(&upload, &credentials, "us-east-1", &format!("{endpoint}/{bucket}"), now);

    // As a browser sends it: the fields in order, the file last.
    let mut multipart = Form::new();
    for (name, value) in &form.fields {
        multipart = multipart.text(name.clone(), value.clone());
    }
    let file = Part::bytes(bytes.clone()).file_name("Report \"final\".pdf").mime_str("application/pdf").unwrap();
    let response = reqwest::Client::new().post(&form.url).multipart(multipart.part("file", file)).send().await.unwrap();
    let status = response.status();
    assert!(status.is_success(), "{status}: {}", response.text().await.unwrap_or_default());

    let object = shared::exports::client().await.get_object().bucket(&bucket).key(key).send().await.unwrap();
    assert_eq!(object.content_type(), Some("application/pdf"));
    assert_eq!(object.body.collect().await.unwrap().into_bytes().as_ref(), bytes.as_slice(), "the bytes differ");
}
