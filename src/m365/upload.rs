//! Writing files into a drive for restores (graph-protocol.md §4.4): a child by name, folder
//! creation, and upload sessions (`driveitem-createuploadsession`): the session names the file,
//! the conflict behaviour (`fail`, `replace`, `rename`) and the original `fileSystemInfo`; the
//! bytes go to the pre-authenticated `uploadUrl` in sequential chunks whose length is a multiple
//! of 320 KiB (the last may be shorter), each under 60 MiB. It must never send the bearer token
//! to the upload URL, nor log that URL's query.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::http::{GraphRequest, without_query};
use crate::m365::types::DriveItem;

/// Every chunk but the last is a multiple of this (327,680 bytes).
pub const UPLOAD_UNIT: usize = 320 * 1024;

/// What to do when the target name is taken (`@microsoft.graph.conflictBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictBehavior {
    Fail,
    Replace,
    Rename,
}

impl ConflictBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Replace => "replace",
            Self::Rename => "rename",
        }
    }
}

/// An open upload session. Its URL carries its credential: never log it.
#[derive(Clone)]
pub struct UploadSession {
    pub upload_url: Url,
    pub expires: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSession")
            .field("upload_url", &without_query(&self.upload_url))
            .field("expires", &self.expires)
            .finish()
    }
}

/// How a chunk was taken.
#[derive(Debug)]
pub enum ChunkAnswer {
    /// More is expected, from this byte on.
    Continue { next: u64 },
    /// The file is complete and committed.
    Done(Box<DriveItem>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    upload_url: String,
    expiration_date_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionStatus {
    #[serde(default)]
    next_expected_ranges: Vec<String>,
}

fn first_expected(ranges: &[String]) -> Option<u64> {
    ranges
        .first()
        .and_then(|r| r.split('-').next())
        .and_then(|start| start.trim().parse().ok())
}

impl TenantClient {
    /// The child named `name` of folder `parent_id` (`root` for the top), if any.
    pub async fn drive_child(
        &self,
        drive_id: &str,
        parent_id: &str,
        name: &str,
    ) -> Result<Option<DriveItem>, GraphError> {
        let parent = format!("{parent_id}:");
        let child = format!("{name}:");
        let request = self.request(
            &["drives", drive_id, "items", &parent, &child],
            &[],
            self.files(),
        )?;
        self.get_optional(request).await
    }

    /// Creates folder `name` in `parent_id`; `Fail` answers 409 when the name is taken.
    pub async fn create_drive_folder(
        &self,
        drive_id: &str,
        parent_id: &str,
        name: &str,
        conflict: ConflictBehavior,
    ) -> Result<DriveItem, GraphError> {
        let body = serde_json::json!({
            "name": name,
            "folder": {},
            "@microsoft.graph.conflictBehavior": conflict.as_str(),
        });
        let request = self
            .request(
                &["drives", drive_id, "items", parent_id, "children"],
                &[],
                self.files(),
            )?
            .cost(2)
            .post_json(Bytes::from(body.to_string()))
            .creates();
        self.executor().get_json(self.tenant_id(), &request).await
    }

    /// Opens an upload session for `name` in `parent_id`, carrying the original modified time
    /// where given (`fileSystemInfo`).
    pub async fn create_upload_session(
        &self,
        drive_id: &str,
        parent_id: &str,
        name: &str,
        conflict: ConflictBehavior,
        size: u64,
        modified: Option<DateTime<Utc>>,
    ) -> Result<UploadSession, GraphError> {
        let mut item = serde_json::json!({
            "@microsoft.graph.conflictBehavior": conflict.as_str(),
            "name": name,
            "fileSize": size,
        });
        if let Some(modified) = modified {
            item["fileSystemInfo"] = serde_json::json!({
                "lastModifiedDateTime": modified.to_rfc3339_opts(SecondsFormat::Secs, true),
            });
        }
        let body = serde_json::json!({ "item": item });
        let parent = format!("{parent_id}:");
        let child = format!("{name}:");
        let request = self
            .request(
                &[
                    "drives",
                    drive_id,
                    "items",
                    &parent,
                    &child,
                    "createUploadSession",
                ],
                &[],
                self.files(),
            )?
            .cost(2)
            .post_json(Bytes::from(body.to_string()));
        let answer: SessionAnswer = self.executor().get_json(self.tenant_id(), &request).await?;
        let upload_url = Url::parse(&answer.upload_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http") && url.host().is_some())
            .ok_or_else(|| GraphError::Decode {
                url: request.loggable_url(),
                message: "uploadUrl is not an http(s) URL".into(),
            })?;
        Ok(UploadSession {
            upload_url,
            expires: answer.expiration_date_time,
        })
    }

    /// Sends bytes `start..start + chunk.len()` of a file of `total` bytes. A chunk the
    /// service already has (416 after a retried send) is answered from the session's status.
    pub async fn upload_chunk(
        &self,
        session: &UploadSession,
        start: u64,
        total: u64,
        chunk: Bytes,
    ) -> Result<ChunkAnswer, GraphError> {
        let end = start + chunk.len() as u64 - 1;
        let mut request = GraphRequest::get(session.upload_url.clone(), self.files())
            .pre_authenticated()
            .cost(2)
            .header("content-range", &format!("bytes {start}-{end}/{total}"))
            .header("content-type", "application/octet-stream");
        request.method = Method::PUT;
        request.body = Some(chunk);
        match self.executor().get_bytes(self.tenant_id(), &request).await {
            Ok(body) => parse_chunk_answer(&request, &body),
            Err(e) if e.status() == Some(416) => {
                let status =
                    GraphRequest::get(session.upload_url.clone(), self.files()).pre_authenticated();
                let answer: SessionStatus =
                    self.executor().get_json(self.tenant_id(), &status).await?;
                match first_expected(&answer.next_expected_ranges) {
                    Some(next) if next > end => Ok(ChunkAnswer::Continue { next }),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Creates an empty file (an upload session cannot carry zero bytes).
    pub async fn put_empty_file(
        &self,
        drive_id: &str,
        parent_id: &str,
        name: &str,
        conflict: ConflictBehavior,
    ) -> Result<DriveItem, GraphError> {
        let parent = format!("{parent_id}:");
        let child = format!("{name}:");
        let mut request = self
            .request(
                &["drives", drive_id, "items", &parent, &child, "content"],
                &[("@microsoft.graph.conflictBehavior", conflict.as_str())],
                self.files(),
            )?
            .cost(2)
            .header("content-type", "application/octet-stream");
        request.method = Method::PUT;
        request.body = Some(Bytes::new());
        self.executor().get_json(self.tenant_id(), &request).await
    }
}

fn parse_chunk_answer(request: &GraphRequest, body: &[u8]) -> Result<ChunkAnswer, GraphError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| GraphError::Decode {
            url: request.loggable_url(),
            message: e.to_string(),
        })?;
    if value.get("id").is_some() {
        let item: DriveItem = serde_json::from_value(value).map_err(|e| GraphError::Decode {
            url: request.loggable_url(),
            message: e.to_string(),
        })?;
        return Ok(ChunkAnswer::Done(Box::new(item)));
    }
    let status: SessionStatus = serde_json::from_value(value).map_err(|e| GraphError::Decode {
        url: request.loggable_url(),
        message: e.to_string(),
    })?;
    let next = first_expected(&status.next_expected_ranges).ok_or_else(|| GraphError::Decode {
        url: request.loggable_url(),
        message: "neither a driveItem nor nextExpectedRanges".into(),
    })?;
    Ok(ChunkAnswer::Continue { next })
}
