//! Writes an archive's data object as it is produced: lines are gzip-compressed into a buffer
//! that goes to S3 as one part of a multipart upload whenever it reaches the part size, so a
//! workspace of any size costs one part of memory.

use std::io::Write as _;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// S3's smallest part but the last.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("S3 {step} failed: {reason}")]
    S3 { step: &'static str, reason: String },
    #[error("compressing failed: {0}")]
    Compress(#[from] std::io::Error),
}

fn s3_error<E: std::error::Error>(step: &'static str) -> impl FnOnce(E) -> ArchiveError {
    move |error| ArchiveError::S3 { step, reason: DisplayErrorContext(error).to_string() }
}

/// What was stored: the object's size and SHA-256 (of the compressed bytes, as downloaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: u64,
    pub sha256: String,
    pub lines: u64,
    pub parts: usize,
}

pub struct ArchiveWriter<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: String,
    upload_id: String,
    part_bytes: usize,
    encoder: GzEncoder<Vec<u8>>,
    parts: Vec<CompletedPart>,
    hasher: Sha256,
    bytes: u64,
    lines: u64,
}

impl<'a> ArchiveWriter<'a> {
    /// Starts the multipart upload of `key`; parts are sent once `part_bytes` (at least S3's
    /// minimum) of compressed data are ready.
    pub async fn start(
        s3: &'a aws_sdk_s3::Client,
        bucket: &'a str,
        key: String,
        part_bytes: usize,
    ) -> Result<Self, ArchiveError> {
        let upload = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(&key)
            .content_type("application/gzip")
            .send()
            .await
            .map_err(s3_error("CreateMultipartUpload"))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| ArchiveError::S3 { step: "CreateMultipartUpload", reason: "no upload id".into() })?
            .to_owned();
        let part_bytes = part_bytes.max(MIN_PART_BYTES);
        Ok(Self {
            s3,
            bucket,
            key,
            upload_id,
            part_bytes,
            encoder: GzEncoder::new(Vec::with_capacity(part_bytes + 64 * 1024), Compression::fast()),
            parts: Vec::new(),
            hasher: Sha256::new(),
            bytes: 0,
            lines: 0,
        })
    }

    /// Appends one line (a newline is added).
    pub async fn write_line(&mut self, line: &[u8]) -> Result<(), ArchiveError> {
        self.encoder.write_all(line)?;
        self.encoder.write_all(b"\n")?;
        self.lines += 1;
        if self.encoder.get_ref().len() >= self.part_bytes {
            let body = std::mem::replace(self.encoder.get_mut(), Vec::with_capacity(self.part_bytes + 64 * 1024));
            self.upload_part(body).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, body: Vec<u8>) -> Result<(), ArchiveError> {
        self.hasher.update(&body);
        self.bytes += body.len() as u64;
        let number = self.parts.len() as i32 + 1;
        let part = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(s3_error("UploadPart"))?;
        self.parts
            .push(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_owned)).build());
        Ok(())
    }

    /// Sends the rest and completes the object.
    pub async fn finish(mut self) -> Result<Stored, ArchiveError> {
        let encoder = std::mem::replace(&mut self.encoder, GzEncoder::new(Vec::new(), Compression::fast()));
        let rest = encoder.finish()?;
        self.upload_part(rest).await?;
        self.s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(self.parts.clone())).build())
            .send()
            .await
            .map_err(s3_error("CompleteMultipartUpload"))?;
        Ok(Stored {
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.clone().finalize()),
            lines: self.lines,
            parts: self.parts.len(),
        })
    }

    /// Gives up: S3 discards the parts sent so far (the bucket's lifecycle rule also removes
    /// uploads left incomplete).
    pub async fn abort(self) {
        let aborted =
            self.s3.abort_multipart_upload().bucket(self.bucket).key(&self.key).upload_id(&self.upload_id).send().await;
        if let Err(error) = aborted {
            tracing::warn!(key = %self.key, error = %DisplayErrorContext(error), "could not abort a multipart upload");
        }
    }
}
