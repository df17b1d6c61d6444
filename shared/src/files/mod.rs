//! Files on deliverables: where their objects live in the files bucket, how their names and
//! content types are accepted, and the store that signs uploads and downloads and checks what
//! was uploaded.
//!
//! A browser uploads straight to S3 through a form signed with a POST policy
//! ([`upload_form`]); the API then confirms the upload by checking the object (HeadObject)
//! rather than waiting for an S3 event through SQS: the client gets its answer in the same
//! call, no queue or worker sits on the path, and it runs the same against moto, which sends no
//! events.

pub mod names;
pub mod store;
pub mod upload_form;

use std::time::Duration;

use uuid::Uuid;

pub use names::{ContentType, FileName, content_disposition};
pub use store::{FileStore, StoreError, StoredObject};

/// How long an upload form works.
pub const UPLOAD_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a download link works.
pub const DOWNLOAD_TTL: Duration = Duration::from_secs(5 * 60);
/// The most one upload takes: the most a single S3 POST accepts.
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The tag an upload carries until it is confirmed; the bucket's lifecycle rule expires objects
/// still carrying it (uploads no row confirmed).
pub const PENDING_TAGGING: &str =
    "<Tagging><TagSet><Tag><Key>upload</Key><Value>pending</Value></Tag></TagSet></Tagging>";

/// The object of a file: under its workspace's prefix, named by the file's id. The database
/// derives the same key when it queues the object's deletion (`app.release_file`).
pub fn object_key(workspace_id: Uuid, file_id: Uuid) -> String {
    format!("files/{workspace_id}/{file_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_object_lives_under_its_workspace() {
        let (w, f) = (Uuid::nil(), Uuid::max());
        assert_eq!(object_key(w, f), format!("files/{w}/{f}"));
    }
}
