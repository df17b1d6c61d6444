//! The files bucket as the API and the files worker use it: signing an upload form and a
//! download link (no request), reading what an upload left (HeadObject), marking it confirmed,
//! and deleting objects.

use aws_sdk_s3::config::ProvideCredentials as _;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use secrecy::SecretString;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::upload_form::{self, SignedForm, SigningCredentials, Upload};

#[derive(Debug, thiserror::Error)]
#[error("S3: {0}")]
pub struct StoreError(String);

impl StoreError {
    fn from_sdk(error: impl std::error::Error) -> Self {
        Self(DisplayErrorContext(error).to_string())
    }
}

/// The bucket, with the configuration its forms are signed with.
pub struct FileStore {
    client: aws_sdk_s3::Client,
    config: aws_config::SdkConfig,
    bucket: String,
    /// Where a browser posts a form: the bucket's own endpoint.
    bucket_url: String,
}

/// What S3 holds at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: i64,
    pub content_type: Option<String>,
    pub last_modified: Option<OffsetDateTime>,
}

impl FileStore {
    /// The store of `bucket` from the standard AWS configuration. With `AWS_ENDPOINT_URL` set
    /// (moto, locally) the bucket is addressed by path, as local servers expect.
    pub async fn connect(bucket: String) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".to_owned());
        let bucket_url = match config.endpoint_url() {
            Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let local = config.endpoint_url().is_some();
        let client =
            aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(local).build());
        Self { client, config, bucket, bucket_url }
    }

    /// The process's store, built on the first request that needs it: a function's cold start
    /// does not pay for loading the AWS configuration.
    pub async fn shared(bucket: &str) -> &'static FileStore {
        static STORE: OnceCell<FileStore> = OnceCell::const_new();
        STORE.get_or_init(|| Self::connect(bucket.to_owned())).await
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The form that uploads exactly `size` bytes of `content_type` to `key` until `expires_at`,
    /// tagged pending until confirmed. Signing asks the credentials provider for the function's
    /// credentials (the environment's on Lambda: no request).
    pub async fn upload_form(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires_at: OffsetDateTime,
    ) -> Result<SignedForm, StoreError> {
        let provider = self.config.credentials_provider().ok_or_else(|| StoreError("no AWS credentials".into()))?;
        let credentials = provider.provide_credentials().await.map_err(StoreError::from_sdk)?;
        let signing = SigningCredentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: SecretString::from(credentials.secret_access_key().to_owned()),
            session_token: credentials.session_token().map(str::to_owned),
        };
        let region = self.config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".to_owned());
        let upload =
            Upload { bucket: &self.bucket, key, content_type, size, expires_at, tagging: Some(super::PENDING_TAGGING) };
        Ok(upload_form::sign(&upload, &signing, &region, &self.bucket_url, OffsetDateTime::now_utc()))
    }

    /// A link that downloads `key` for `DOWNLOAD_TTL` as an attachment named `name`, with the
    /// content type it was confirmed with; signing makes no request.
    pub async fn download_link(&self, key: &str, name: &str, content_type: &str) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(super::DOWNLOAD_TTL).map_err(|e| StoreError(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(super::content_disposition(name))
            .response_content_type(content_type)
            .presigned(config)
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(request.uri().to_owned())
    }

    /// What is stored at `key`, or `None` when nothing is.
    pub async fn head(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(StoredObject {
                size: head.content_length().unwrap_or_default(),
                content_type: head.content_type().map(str::to_owned),
                last_modified: head.last_modified().and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
            })),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(StoreError::from_sdk(error)),
        }
    }

    /// Takes the pending tag off a confirmed upload, so the lifecycle rule keeps it.
    pub async fn mark_confirmed(&self, key: &str) -> Result<(), StoreError> {
        self.client.delete_object_tagging().bucket(&self.bucket).key(key).send().await.map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Deletes up to 1,000 objects in one request; answers the keys S3 failed to delete, each
    /// with its reason (a key that does not exist is deleted, as S3 says).
    pub async fn delete(&self, keys: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let objects = keys
            .iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError(e.to_string()))?;
        let delete =
            Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(|e| StoreError(e.to_string()))?;
        let answer = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(answer
            .errors()
            .iter()
            .map(|e| (e.key().unwrap_or_default().to_owned(), e.message().or(e.code()).unwrap_or("unknown").to_owned()))
            .collect())
    }
}
