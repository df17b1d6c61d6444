//! Files on deliverables in the tests: the bucket in moto, a browser's post of an upload form,
//! what the bucket holds, and the files worker.

use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::sync::OnceCell;

/// The bucket every test app's files go to (`FILES_BUCKET`): one per process, as the API's
/// store is.
pub const BUCKET: &str = "saas-test-files";

/// The files bucket, created in moto on first use.
pub async fn bucket() -> &'static str {
    static CREATED: OnceCell<()> = OnceCell::const_new();
    CREATED
        .get_or_init(|| async {
            crate::local_aws().await;
            let client = shared::exports::client().await;
            if client.head_bucket().bucket(BUCKET).send().await.is_err() {
                client.create_bucket().bucket(BUCKET).send().await.expect("create the files bucket in moto");
            }
        })
        .await;
    BUCKET
}

/// Posts `bytes` through the `upload` form an upload request answered, as a browser does:
/// multipart/form-data, the form's fields, then the file (`content_type` is the file part's
/// own type, which S3 ignores: the form's `Content-Type` field is what it stores).
pub async fn post_form(upload: &Value, bytes: Vec<u8>, content_type: &str) -> reqwest::StatusCode {
    let mut form = Form::new();
    for (name, value) in upload["fields"].as_object().expect("the form's fields") {
        form = form.text(name.clone(), value.as_str().expect("a text field").to_owned());
    }
    let file = Part::bytes(bytes).file_name("upload.bin").mime_str(content_type).expect("a media type");
    let url = upload["url"].as_str().expect("the form's url");
    assert!(url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"), "not moto: {url}");
    reqwest::Client::new().post(url).multipart(form.part("file", file)).send().await.expect("post the form").status()
}

/// The object's bytes, or `None` when the bucket has none at `key`.
pub async fn object(key: &str) -> Option<Vec<u8>> {
    let client = shared::exports::client().await;
    let object = client.get_object().bucket(bucket().await).key(key).send().await.ok()?;
    Some(object.body.collect().await.expect("the object's body").into_bytes().to_vec())
}

/// Every key under `prefix` in the files bucket.
pub async fn keys_under(prefix: &str) -> Vec<String> {
    let client = shared::exports::client().await;
    let listed = client.list_objects_v2().bucket(bucket().await).prefix(prefix).send().await.expect("list objects");
    listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

/// Puts an object straight into the bucket, as a client ignoring its form could on a local S3
/// (moto does not enforce a POST policy).
pub async fn put_object(key: &str, bytes: Vec<u8>, content_type: &str) {
    shared::exports::client()
        .await
        .put_object()
        .bucket(bucket().await)
        .key(key)
        .content_type(content_type)
        .body(bytes.into())
        .send()
        .await
        .expect("put an object");
}

/// The files worker (the `app_files` role) on the files bucket.
pub async fn worker() -> files_worker::FilesWorker {
    crate::worker("app_files", &[("FILES_BUCKET", bucket().await.to_owned())]).await
}
