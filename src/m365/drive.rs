//! Drive calls (graph-protocol.md §4): user, group and site drives, `root/delta` per drive and
//! content download. Each counts resource units against the tenant's OneDrive/SharePoint
//! bucket. It must never send the bearer token to the pre-authenticated download URL.

use futures::TryStreamExt;
use reqwest::StatusCode;
use url::Url;

use crate::m365::client::TenantClient;
use crate::m365::delta::{DeltaStart, DeltaStream, delta_pages};
use crate::m365::error::GraphError;
use crate::m365::http::{ByteStream, GraphRequest, body_stream};
use crate::m365::paging::{ItemStream, paged};
use crate::m365::throttle::{backoff_delay, parse_retry_after};
use crate::m365::types::{Drive, DriveItem};

const DRIVE_FIELDS: &str = "id,name,driveType,webUrl,quota";

impl TenantClient {
    /// A user's OneDrive, or `None` when none is provisioned (404, §4.1).
    pub async fn user_drive(&self, user_id: &str) -> Result<Option<Drive>, GraphError> {
        self.optional_drive(&["users", user_id, "drive"]).await
    }

    /// A Microsoft 365 group's document library, or `None`.
    pub async fn group_drive(&self, group_id: &str) -> Result<Option<Drive>, GraphError> {
        self.optional_drive(&["groups", group_id, "drive"]).await
    }

    /// A site's drives, one per document library.
    pub fn site_drives(&self, site_id: &str) -> ItemStream<Drive> {
        match self.request(
            &["sites", site_id, "drives"],
            &[("$select", DRIVE_FIELDS)],
            self.files(),
        ) {
            Ok(request) => paged(self.executor().clone(), self.tenant_id(), request.cost(2)),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// All drives of a site, gathered.
    pub async fn site_drive_list(&self, site_id: &str) -> Result<Vec<Drive>, GraphError> {
        self.site_drives(site_id).try_collect().await
    }

    async fn optional_drive(&self, segments: &[&str]) -> Result<Option<Drive>, GraphError> {
        let request = self.request(segments, &[("$select", DRIVE_FIELDS)], self.files())?;
        match self
            .executor()
            .get_json::<Drive>(self.tenant_id(), &request)
            .await
        {
            Ok(drive) => Ok(Some(drive)),
            // "User's mysite not found", "404 FILE NOT FOUND", "Tenant does not have a SPO
            // license": every flavour is a 404 (§4.1).
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `root/delta` of a drive (§4.2). A round without a token costs 2 RU per page, with one 1.
    pub fn drive_delta(
        &self,
        drive_id: &str,
        start: DeltaStart,
        page_size: u32,
    ) -> DeltaStream<DriveItem> {
        let cost = if start == DeltaStart::Initial { 2 } else { 1 };
        let top = page_size.max(1).to_string();
        match self.request(
            &["drives", drive_id, "root", "delta"],
            &[("$top", &top)],
            self.files(),
        ) {
            Ok(initial) => delta_pages(
                self.executor().clone(),
                self.tenant_id(),
                initial.cost(cost),
                start,
            ),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// A file's content, streamed. Graph answers `/content` with 302 to a pre-authenticated URL
    /// (§4.3); that URL is fetched without the bearer token, on a client that never has one. When
    /// the pre-authenticated fetch fails in a way a retry can help, a fresh URL is asked for
    /// (they live only minutes). A stream that breaks mid-way ends with an error; the caller
    /// downloads the item again.
    pub async fn download(&self, drive_id: &str, item_id: &str) -> Result<ByteStream, GraphError> {
        let request: GraphRequest = self.request(
            &["drives", drive_id, "items", item_id, "content"],
            &[],
            self.files(),
        )?;
        let executor = self.executor();
        let mut retries = 0;
        loop {
            let response = executor.send(self.tenant_id(), &request).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(body_stream(response.response, response.permit));
            }
            let location = response
                .response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| request.url.join(l).ok())
                .ok_or_else(|| GraphError::Decode {
                    url: request.url.to_string(),
                    message: format!("{status} without a usable Location"),
                })?;
            match self.fetch_preauthenticated(location, response.permit).await {
                Err(e) if e.is_retryable() && retries < executor.policy.max_retries => {
                    retries += 1;
                    let wait = e.retry_after().unwrap_or_else(|| {
                        backoff_delay(&executor.policy, retries, &mut rand::rng())
                    });
                    match e.status() {
                        // SharePoint's throttle applies to the whole tenant bucket (§5.3).
                        Some(status @ (429 | 503)) => {
                            let code = e.code().map(str::to_string);
                            executor.governor.record_throttle(
                                &request.resource,
                                status,
                                code,
                                e.retry_after(),
                                wait,
                            );
                        }
                        _ => executor.governor.sleeper().sleep(wait).await,
                    }
                }
                other => return other,
            }
        }
    }

    async fn fetch_preauthenticated(
        &self,
        url: Url,
        permit: crate::m365::throttle::Permit,
    ) -> Result<ByteStream, GraphError> {
        let host = url.host_str().unwrap_or_default().to_string();
        let response = self
            .executor()
            .anonymous
            .get(url.clone())
            .send()
            .await
            .map_err(|e| GraphError::Transport {
                host,
                message: e.to_string(),
                retries: 0,
            })?;
        let status = response.status();
        if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
            return Ok(body_stream(response, permit));
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header(reqwest::header::RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(&v, self.executor().governor.clock().now()));
        Err(GraphError::from_response(
            status.as_u16(),
            header("request-id"),
            retry_after,
            None,
            &body,
        ))
    }
}
