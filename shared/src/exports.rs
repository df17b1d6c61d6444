//! Workspace exports: where an archive lives in the exports bucket, how it is named, and the S3
//! client that writes it (the export worker) and signs its download links (the API).
//!
//! An archive is objects under `exports/<workspace>/<export>/`: `data.jsonl.gz`, one JSON
//! object per line (`{"table": ..., "row": {...}}`, gzip), `manifest.json`, which describes
//! it (format, snapshot time, tables with their columns and row counts, withheld columns, the
//! data object's size and SHA-256, the files), and `files/<file_id>`, a copy of each ready
//! file. docs/exports.md documents the format.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// The archive format's name and version, written into every manifest.
pub const FORMAT: &str = "saas-workspace-export/1";
/// How long a download link works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// How long archives are kept; the bucket's lifecycle rule (template.yaml) removes them then.
pub const RETENTION_DAYS: i64 = 7;

pub fn data_key(workspace_id: Uuid, export_id: Uuid) -> String {
    format!("exports/{workspace_id}/{export_id}/data.jsonl.gz")
}

pub fn manifest_key(workspace_id: Uuid, export_id: Uuid) -> String {
    format!("exports/{workspace_id}/{export_id}/manifest.json")
}

/// A file's copy in the archive, beside the data (`files/<file_id>` in the manifest).
pub fn file_key(workspace_id: Uuid, export_id: Uuid, file_id: Uuid) -> String {
    format!("exports/{workspace_id}/{export_id}/files/{file_id}")
}

#[derive(Debug, thiserror::Error)]
#[error("S3: {0}")]
pub struct LinkError(String);

/// An S3 client from the standard AWS configuration. With `AWS_ENDPOINT_URL` set (moto, locally)
/// buckets are addressed by path, as local servers expect.
pub async fn client() -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let local = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(local).build())
}

/// The process's S3 client, built on first use: the API function needs it only to sign links,
/// so its cold start does not pay for loading the AWS configuration.
pub async fn shared_client() -> &'static aws_sdk_s3::Client {
    static CLIENT: OnceCell<aws_sdk_s3::Client> = OnceCell::const_new();
    CLIENT.get_or_init(client).await
}

/// A link that downloads `key` for `LINK_TTL`; signing makes no request.
pub async fn download_link(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<String, LinkError> {
    let config = PresigningConfig::expires_in(LINK_TTL).map_err(|e| LinkError(e.to_string()))?;
    let request = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| LinkError(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
    Ok(request.uri().to_owned())
}

/// Whether the archive holds an object at `key` (one HeadObject).
pub async fn holds(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<bool, LinkError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(error) => Err(LinkError(aws_sdk_s3::error::DisplayErrorContext(error).to_string())),
    }
}

/// Deletes every archive of a workspace (its prefix), after the workspace itself is gone.
pub async fn delete_archives(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    workspace_id: Uuid,
) -> Result<usize, LinkError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let failed = |e: &dyn std::fmt::Display| LinkError(e.to_string());
    let mut deleted = 0;
    let mut pages =
        client.list_objects_v2().bucket(bucket).prefix(format!("exports/{workspace_id}/")).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failed(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(&e))?;
        if objects.is_empty() {
            continue;
        }
        deleted += objects.len();
        let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(|e| failed(&e))?;
        client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| failed(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_lives_under_its_workspace_and_export() {
        let (w, e) = (Uuid::nil(), Uuid::max());
        assert_eq!(data_key(w, e), format!("exports/{w}/{e}/data.jsonl.gz"));
        assert_eq!(manifest_key(w, e), format!("exports/{w}/{e}/manifest.json"));
    }
}
