//! The workspace's files in its archive: each ready file's object copied by S3 itself (no byte
//! passes through the worker) beside the data, as `files/<file_id>`, with the file's name for
//! download, and listed in the manifest.

use aws_sdk_s3::error::DisplayErrorContext;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::archive::ArchiveError;

pub struct ReadyFile {
    pub id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
}

/// The workspace's ready files, read in the archive's snapshot.
pub async fn ready(tx: &mut PgConnection, workspace_id: Uuid) -> Result<Vec<ReadyFile>, sqlx::Error> {
    sqlx::query_as!(
        ReadyFile,
        "SELECT id, name, content_type, size_bytes FROM files
         WHERE workspace_id = $1 AND state = 'ready' ORDER BY id",
        workspace_id,
    )
    .fetch_all(&mut *tx)
    .await
}

/// Copies each file into the archive; answers the manifest's `files` section. A file deleted
/// since the snapshot (its object gone) is listed as missing; any other failure fails the export
/// (it is retried).
pub async fn copy_into_archive(
    s3: &aws_sdk_s3::Client,
    files_bucket: &str,
    archive_bucket: &str,
    workspace_id: Uuid,
    export_id: Uuid,
    files: &[ReadyFile],
) -> Result<Value, ArchiveError> {
    let mut copied = Vec::with_capacity(files.len());
    let mut missing = Vec::new();
    for file in files {
        let source = format!("{files_bucket}/{}", shared::files::object_key(workspace_id, file.id));
        let copy = s3
            .copy_object()
            .copy_source(&source)
            .bucket(archive_bucket)
            .key(shared::exports::file_key(workspace_id, export_id, file.id))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type(&file.content_type)
            .content_disposition(shared::files::content_disposition(&file.name))
            .send()
            .await;
        match copy {
            Ok(_) => copied.push(json!({
                "id": file.id, "name": file.name, "content_type": file.content_type,
                "size_bytes": file.size_bytes, "object": format!("files/{}", file.id),
            })),
            Err(error) if error.raw_response().is_some_and(|r| r.status().as_u16() == 404) => missing.push(file.id),
            Err(error) => {
                return Err(ArchiveError::S3 { step: "CopyObject", reason: DisplayErrorContext(error).to_string() });
            }
        }
    }
    Ok(json!({
        "content": "each ready file's bytes, as the object named `object` beside this manifest",
        "count": copied.len(),
        "bytes": files.iter().filter(|f| !missing.contains(&f.id)).map(|f| f.size_bytes).sum::<i64>(),
        "items": copied,
        "missing": missing,
    }))
}
