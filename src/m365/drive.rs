//! Drive calls (graph-protocol.md §4): user, group and site drives, `root/delta` per drive and
//! content download. Each counts resource units against the tenant's OneDrive/SharePoint
//! bucket. It must never send the bearer token to the pre-authenticated download URL.

use futures::TryStreamExt;

use crate::m365::client::TenantClient;
use crate::m365::delta::{DeltaStart, DeltaStream, delta_pages};
use crate::m365::error::GraphError;
use crate::m365::http::ByteStream;
use crate::m365::paging::ItemStream;
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
        self.files_listing(&["sites", site_id, "drives"], &[("$select", DRIVE_FIELDS)])
    }

    /// All drives of a site, gathered.
    pub async fn site_drive_list(&self, site_id: &str) -> Result<Vec<Drive>, GraphError> {
        self.site_drives(site_id).try_collect().await
    }

    async fn optional_drive(&self, segments: &[&str]) -> Result<Option<Drive>, GraphError> {
        // "User's mysite not found", "404 FILE NOT FOUND", "Tenant does not have a SPO
        // license": every flavour is a 404 (§4.1).
        let request = self.request(segments, &[("$select", DRIVE_FIELDS)], self.files())?;
        self.get_optional(request).await
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

    /// A file's content, streamed; see `download` for how failures are handled.
    pub async fn download(&self, drive_id: &str, item_id: &str) -> Result<ByteStream, GraphError> {
        self.download_from(drive_id, item_id, 0, None).await
    }

    /// A file's content from byte `offset` on (a download cut off by a crash goes on where it
    /// stopped), streamed and resumed by itself when the connection breaks. `download_url` is
    /// the item's `@microsoft.graph.downloadUrl` from the delta feed, tried first so no
    /// `/content` request is spent; when it has expired a fresh one is asked for. A file deleted
    /// since it was listed answers `ErrorKind::NotFound`.
    pub async fn download_from(
        &self,
        drive_id: &str,
        item_id: &str,
        offset: u64,
        download_url: Option<&str>,
    ) -> Result<ByteStream, GraphError> {
        let request = self.request(
            &["drives", drive_id, "items", item_id, "content"],
            &[],
            self.files(),
        )?;
        let known = download_url.and_then(|u| url::Url::parse(u).ok());
        crate::m365::download::resumable(self.clone(), request, offset, known).await
    }

    /// One drive item by id, with the fields delta gives plus `parentReference.path`.
    pub async fn drive_item(
        &self,
        drive_id: &str,
        item_id: &str,
    ) -> Result<Option<DriveItem>, GraphError> {
        let request = self.request(&["drives", drive_id, "items", item_id], &[], self.files())?;
        self.get_optional(request).await
    }

    /// The children of a folder or package (a OneNote notebook's sections), 2 RU per page.
    pub fn drive_children(&self, drive_id: &str, item_id: &str) -> ItemStream<DriveItem> {
        self.files_listing(&["drives", drive_id, "items", item_id, "children"], &[])
    }
}
