//! Directory calls for one tenant (graph-protocol.md §2): organization, users, groups, sites,
//! their delta feeds and soft-deleted objects, plus the probe that tells whether a user has a
//! mailbox. It owns which fields are selected and which endpoint is used; it must never decide
//! what a change means for protection (that is `inventory`'s job).

use futures::TryStreamExt;
use serde::Deserialize;

use crate::m365::client::TenantClient;
use crate::m365::delta::{DeltaStart, DeltaStream, delta_pages};
use crate::m365::error::{ErrorKind, GraphError};
use crate::m365::paging::{ItemStream, paged};
use crate::m365::types::{Drive, Group, MailboxPurpose, Organization, Site, SubscribedSku, User};

/// What discovery reads of a user. Whether the user has a mailbox or a OneDrive is not a
/// directory property: `probe_mailbox` and `user_drive` ask the workloads themselves (§2.3,
/// §4.1). `mail` and `assignedPlans` say which of those questions are worth asking: a user with
/// no mail address has no mailbox, and users delta tracks `assignedPlans`, so a licence assigned
/// later shows up in the next round.
const USER_FIELDS: &str =
    "id,displayName,userPrincipalName,mail,accountEnabled,userType,assignedPlans";
const GROUP_FIELDS: &str = "id,displayName,description,mail,mailEnabled,securityEnabled,groupTypes,resourceProvisioningOptions,visibility";
/// Largest page the directory serves (§2.1: `$top` 1–999).
const DIRECTORY_PAGE: &str = "999";

/// How sites are listed (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteListing {
    /// `sites/getAllSites`: every site, app-only permission.
    GetAllSites,
    /// `sites?search=*`: search-based, eventually consistent.
    Search,
}

/// Whether a user has an Exchange Online mailbox Graph can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxStatus {
    Present,
    /// No mailbox, unlicensed, soft-deleted or on-premises (`MailboxNotEnabledForRESTAPI`, §2.3).
    Absent,
}

/// What of a user can be backed up, as the workloads themselves answer.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWorkloads {
    pub mailbox: MailboxStatus,
    /// The user's OneDrive, when one is provisioned.
    pub onedrive: Option<Drive>,
}

#[derive(Debug, Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailboxSettingsPurpose {
    user_purpose: Option<MailboxPurpose>,
}

impl TenantClient {
    /// `GET /organization`: the tenant's one organization object (§2.4).
    pub async fn organization(&self) -> Result<Organization, GraphError> {
        let request = self.request(
            &["organization"],
            &[("$select", "id,displayName,verifiedDomains")],
            self.directory(),
        )?;
        let orgs: Collection<Organization> =
            self.executor().get_json(self.tenant_id(), &request).await?;
        orgs.value
            .into_iter()
            .next()
            .ok_or_else(|| GraphError::Decode {
                url: request.url.to_string(),
                message: "organization collection is empty".into(),
            })
    }

    /// Every user, page by page.
    pub fn users(&self) -> ItemStream<User> {
        self.list(
            &["users"],
            &[("$select", USER_FIELDS), ("$top", DIRECTORY_PAGE)],
        )
    }

    /// Every group (security, distribution, Microsoft 365; teams are Microsoft 365 groups).
    pub fn groups(&self) -> ItemStream<Group> {
        self.list(
            &["groups"],
            &[("$select", GROUP_FIELDS), ("$top", DIRECTORY_PAGE)],
        )
    }

    /// Soft-deleted users, restorable for 30 days (§2.3). The cast segment is required.
    pub fn deleted_users(&self) -> ItemStream<User> {
        self.list(
            &["directory", "deletedItems", "microsoft.graph.user"],
            &[
                (
                    "$select",
                    "id,displayName,userPrincipalName,mail,accountEnabled,userType,deletedDateTime",
                ),
                ("$top", DIRECTORY_PAGE),
            ],
        )
    }

    /// Soft-deleted groups (only Microsoft 365 groups are kept; security groups go at once).
    pub fn deleted_groups(&self) -> ItemStream<Group> {
        self.list(
            &["directory", "deletedItems", "microsoft.graph.group"],
            &[
                (
                    "$select",
                    "id,displayName,mail,mailEnabled,securityEnabled,groupTypes,resourceProvisioningOptions,deletedDateTime",
                ),
                ("$top", DIRECTORY_PAGE),
            ],
        )
    }

    /// `users/delta`: only `$select` is allowed, and it goes on the first request only (§2.2).
    pub fn users_delta(&self, start: DeltaStart) -> DeltaStream<User> {
        self.directory_delta("users", USER_FIELDS, start)
    }

    /// `groups/delta`.
    pub fn groups_delta(&self, start: DeltaStart) -> DeltaStream<Group> {
        self.directory_delta("groups", GROUP_FIELDS, start)
    }

    /// `GET /subscribedSkus`: the tenant's subscriptions and how many licences each has.
    /// Needs Organization.Read.All (or LicenseAssignment.Read.All / Directory.Read.All).
    pub async fn subscribed_skus(&self) -> Result<Vec<SubscribedSku>, GraphError> {
        self.list(&["subscribedSkus"], &[]).try_collect().await
    }

    /// The tenant's licence count as SharePoint's throttling table reads it (§5.3): the enabled
    /// units of active, user-assignable subscriptions that include SharePoint Online.
    pub async fn sharepoint_licence_count(&self) -> Result<u32, GraphError> {
        let skus = self.subscribed_skus().await?;
        let total: i64 = skus
            .iter()
            .filter(|sku| {
                sku.applies_to
                    .as_deref()
                    .is_none_or(|a| a.eq_ignore_ascii_case("User"))
                    && sku
                        .capability_status
                        .as_deref()
                        .is_none_or(|c| c.eq_ignore_ascii_case("Enabled"))
                    && sku.includes_sharepoint()
            })
            .filter_map(|sku| sku.prepaid_units.as_ref().and_then(|u| u.enabled))
            .map(|n| n.max(0))
            .sum();
        Ok(u32::try_from(total).unwrap_or(u32::MAX))
    }

    /// Every site in one tokenless `sites/delta` enumeration, deleted ones included: Microsoft
    /// returns those with the `deleted` facet, which the plain listings never show. The
    /// enumeration is read whole each time (2 RU per page, §4.2), so a site missing from it is
    /// gone for good.
    pub fn sites_delta(&self) -> ItemStream<Site> {
        match self.request(&["sites", "delta"], &[], self.files()) {
            Ok(request) => paged(self.executor().clone(), self.tenant_id(), request.cost(2)),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// All sites with the deleted ones marked (`sites_delta`); where the service does not
    /// offer `sites/delta`, the live sites only (`sites`), and `false` to say so.
    pub async fn sites_with_deleted(&self) -> Result<(Vec<Site>, bool), GraphError> {
        match self.sites_delta().try_collect().await {
            Ok(sites) => Ok((sites, true)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::BadRequest) => {
                tracing::info!(tenant = %self.tenant_id(), error = %e, "sites/delta unavailable; listing live sites");
                Ok((self.sites().await?, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Sites by the chosen listing.
    pub fn sites_by(&self, listing: SiteListing) -> ItemStream<Site> {
        let request = match listing {
            SiteListing::GetAllSites => self.request(&["sites", "getAllSites"], &[], self.files()),
            SiteListing::Search => self.request(&["sites"], &[("search", "*")], self.files()),
        };
        match request {
            // A multi-item query costs 2 SharePoint resource units (§5.3).
            Ok(request) => paged(self.executor().clone(), self.tenant_id(), request.cost(2)),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    /// All sites: `getAllSites`, falling back to `search=*` where the tenant or service does not
    /// offer it (it is application-permission only, §2.1).
    pub async fn sites(&self) -> Result<Vec<Site>, GraphError> {
        match self.sites_by(SiteListing::GetAllSites).try_collect().await {
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::BadRequest) => {
                tracing::info!(tenant = %self.tenant_id(), error = %e, "getAllSites unavailable; listing sites by search");
                self.sites_by(SiteListing::Search).try_collect().await
            }
            other => other,
        }
    }

    /// Whether the user has a mailbox Graph can back up: lists one mail folder. Microsoft answers
    /// 404 `MailboxNotEnabledForRESTAPI` for unlicensed, soft-deleted and on-premises mailboxes.
    pub async fn probe_mailbox(&self, user_id: &str) -> Result<MailboxStatus, GraphError> {
        let request = self.request(
            &["users", user_id, "mailFolders"],
            &[("$top", "1"), ("$select", "id")],
            self.mailbox(user_id),
        )?;
        match self
            .executor()
            .get_json::<serde_json::Value>(self.tenant_id(), &request)
            .await
        {
            Ok(_) => Ok(MailboxStatus::Present),
            Err(e) if e.is_not_found() || e.code() == Some("MailboxNotEnabledForRESTAPI") => {
                Ok(MailboxStatus::Absent)
            }
            Err(e) => Err(e),
        }
    }

    /// Probes mailbox and OneDrive together (two requests, run at once).
    pub async fn user_workloads(&self, user_id: &str) -> Result<UserWorkloads, GraphError> {
        let (mailbox, onedrive) =
            futures::join!(self.probe_mailbox(user_id), self.user_drive(user_id));
        Ok(UserWorkloads {
            mailbox: mailbox?,
            onedrive: onedrive?,
        })
    }

    /// `mailboxSettings.userPurpose`: user, shared, room, equipment (§3.6). Needs
    /// MailboxSettings.Read.
    pub async fn mailbox_purpose(
        &self,
        user_id: &str,
    ) -> Result<Option<MailboxPurpose>, GraphError> {
        let request = self.request(
            &["users", user_id, "mailboxSettings"],
            &[("$select", "userPurpose")],
            self.mailbox(user_id),
        )?;
        let settings: MailboxSettingsPurpose =
            self.executor().get_json(self.tenant_id(), &request).await?;
        Ok(settings.user_purpose)
    }

    fn list<T>(&self, segments: &[&str], query: &[(&str, &str)]) -> ItemStream<T>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        match self.request(segments, query, self.directory()) {
            Ok(request) => paged(self.executor().clone(), self.tenant_id(), request),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }

    fn directory_delta<T: crate::m365::delta::DeltaItem>(
        &self,
        collection: &str,
        fields: &str,
        start: DeltaStart,
    ) -> DeltaStream<T> {
        match self.request(
            &[collection, "delta"],
            &[("$select", fields)],
            self.directory(),
        ) {
            Ok(initial) => delta_pages(self.executor().clone(), self.tenant_id(), initial, start),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }
}
