//! The Graph resources Skyvault reads, as typed values with Microsoft's JSON field names
//! (v1.0 CSDL, graph-protocol.md Appendix A). Only the fields Skyvault uses are declared; unknown
//! fields are ignored so a new Graph property never breaks a sync. It must never hold behaviour
//! that needs the network.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A Microsoft Entra tenant id (a GUID). Distinct from Skyvault's own `OrgId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TenantId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(Self)
    }
}

/// `GET /organization` (§2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub verified_domains: Vec<VerifiedDomain>,
}

impl Organization {
    /// The domain the tenant marked as default (e.g. `contoso.com`).
    pub fn default_domain(&self) -> Option<&str> {
        self.verified_domains
            .iter()
            .find(|d| d.is_default == Some(true))
            .and_then(|d| d.name.as_deref())
    }

    /// The `*.onmicrosoft.com` domain the tenant was created with.
    pub fn initial_domain(&self) -> Option<&str> {
        self.verified_domains
            .iter()
            .find(|d| d.is_initial == Some(true))
            .and_then(|d| d.name.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    pub name: Option<String>,
    pub is_default: Option<bool>,
    pub is_initial: Option<bool>,
    #[serde(rename = "type")]
    pub domain_type: Option<String>,
    pub capabilities: Option<String>,
}

/// A user as discovery needs it (`$select`ed, §2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub display_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub mail: Option<String>,
    pub account_enabled: Option<bool>,
    /// `Member` or `Guest`.
    pub user_type: Option<String>,
    /// Set on soft-deleted users read from `directory/deletedItems`.
    pub deleted_date_time: Option<DateTime<Utc>>,
    /// The service plans the user's licences give (`exchange`, `SharePoint`, …). Users delta
    /// tracks it, so a licence assigned later surfaces in the next round.
    #[serde(default)]
    pub assigned_plans: Vec<AssignedPlan>,
}

impl User {
    /// Whether a licence gives the user an enabled plan of `service` (compared without case:
    /// Microsoft writes `exchange` and `SharePoint`).
    pub fn has_enabled_plan(&self, service: &str) -> bool {
        self.assigned_plans.iter().any(|plan| {
            plan.service
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(service))
                && plan
                    .capability_status
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("Enabled"))
        })
    }

    pub fn is_guest(&self) -> bool {
        self.user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("Guest"))
    }
}

/// One service plan assigned to a user or an organization (v1.0 `assignedPlan`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedPlan {
    pub assigned_date_time: Option<DateTime<Utc>>,
    /// `Enabled`, `Warning`, `Suspended`, `Deleted` or `LockedOut`.
    pub capability_status: Option<String>,
    pub service: Option<String>,
    pub service_plan_id: Option<String>,
}

/// A commercial subscription of the tenant (`GET /subscribedSkus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedSku {
    pub sku_id: Option<String>,
    pub sku_part_number: Option<String>,
    /// `User` or `Company`.
    pub applies_to: Option<String>,
    /// `Enabled`, `Warning`, `Suspended`, `Deleted` or `LockedOut`.
    pub capability_status: Option<String>,
    pub consumed_units: Option<i64>,
    pub prepaid_units: Option<LicenseUnitsDetail>,
    #[serde(default)]
    pub service_plans: Vec<ServicePlanInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseUnitsDetail {
    pub enabled: Option<i64>,
    pub suspended: Option<i64>,
    pub warning: Option<i64>,
    pub locked_out: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlanInfo {
    pub service_plan_id: Option<String>,
    pub service_plan_name: Option<String>,
    pub provisioning_status: Option<String>,
    pub applies_to: Option<String>,
}

impl SubscribedSku {
    /// Whether the subscription gives users SharePoint Online (and with it OneDrive): one of
    /// its plans is a `SHAREPOINT…` plan (SHAREPOINTSTANDARD, SHAREPOINTENTERPRISE, …).
    pub fn includes_sharepoint(&self) -> bool {
        self.service_plans.iter().any(|p| {
            p.service_plan_name
                .as_deref()
                .is_some_and(|n| n.to_ascii_uppercase().starts_with("SHAREPOINT"))
        })
    }
}

/// A group (§2.1). Microsoft 365 groups have `groupTypes: ["Unified"]`; a team is a group whose
/// `resourceProvisioningOptions` contains `Team`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub mail: Option<String>,
    pub mail_enabled: Option<bool>,
    pub security_enabled: Option<bool>,
    #[serde(default)]
    pub group_types: Vec<String>,
    #[serde(default)]
    pub resource_provisioning_options: Vec<String>,
    pub visibility: Option<String>,
    pub deleted_date_time: Option<DateTime<Utc>>,
}

impl Group {
    pub fn is_microsoft365(&self) -> bool {
        self.group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("Unified"))
    }

    pub fn is_team(&self) -> bool {
        self.resource_provisioning_options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("Team"))
    }

    pub fn is_mail_enabled(&self) -> bool {
        self.mail_enabled == Some(true)
    }
}

/// A SharePoint site (§2.1). `id` is `host,siteCollectionGuid,webGuid`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub id: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub web_url: Option<String>,
    pub is_personal_site: Option<bool>,
    pub created_date_time: Option<DateTime<Utc>>,
    pub last_modified_date_time: Option<DateTime<Utc>>,
    pub site_collection: Option<SiteCollection>,
    /// Set on sites `sites/delta` reports as deleted.
    pub deleted: Option<DeletedFacet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteCollection {
    pub hostname: Option<String>,
    pub data_location_code: Option<String>,
}

/// A mail folder (§3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    pub display_name: Option<String>,
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: i32,
    #[serde(default)]
    pub total_item_count: i32,
    pub unread_item_count: Option<i32>,
    pub is_hidden: Option<bool>,
}

/// A message as the delta feed returns it with Skyvault's `$select` (§3.2). The body is fetched
/// as MIME separately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    #[serde(rename = "@odata.etag")]
    pub etag: Option<String>,
    pub change_key: Option<String>,
    pub subject: Option<String>,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    #[serde(default)]
    pub to_recipients: Vec<Recipient>,
    #[serde(default)]
    pub cc_recipients: Vec<Recipient>,
    pub received_date_time: Option<DateTime<Utc>>,
    pub sent_date_time: Option<DateTime<Utc>>,
    pub last_modified_date_time: Option<DateTime<Utc>>,
    pub internet_message_id: Option<String>,
    pub has_attachments: Option<bool>,
    pub is_read: Option<bool>,
    pub is_draft: Option<bool>,
    pub parent_folder_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: Option<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailAddress {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// A drive (§4.1): a user's OneDrive, a group's or a site's document library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    pub id: String,
    pub name: Option<String>,
    /// `personal`, `business` or `documentLibrary`.
    pub drive_type: Option<String>,
    pub web_url: Option<String>,
    pub quota: Option<Quota>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub total: Option<i64>,
    pub used: Option<i64>,
    pub remaining: Option<i64>,
    pub deleted: Option<i64>,
    pub state: Option<String>,
}

/// A drive item from `root/delta` (§4.2). Track by `id`; `parentReference.path` is not returned
/// by delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveItem {
    pub id: String,
    pub name: Option<String>,
    pub size: Option<i64>,
    pub e_tag: Option<String>,
    /// Content tag; changes only when content changes. OneDrive for Business omits it on
    /// create/modify in delta, so its absence is not "unchanged".
    pub c_tag: Option<String>,
    pub created_date_time: Option<DateTime<Utc>>,
    pub last_modified_date_time: Option<DateTime<Utc>>,
    pub parent_reference: Option<ItemReference>,
    pub file: Option<FileFacet>,
    pub folder: Option<FolderFacet>,
    pub root: Option<serde_json::Value>,
    /// Present on items deleted since the last round.
    pub deleted: Option<DeletedFacet>,
    pub file_system_info: Option<FileSystemInfo>,
    /// Set on items that are neither file nor folder to a client, notably OneNote notebooks
    /// (`{"type":"oneNote"}`): their children hold the sections.
    pub package: Option<PackageFacet>,
    pub created_by: Option<IdentitySet>,
    pub last_modified_by: Option<IdentitySet>,
    pub web_url: Option<String>,
    /// The pre-authenticated URL of the content, valid a few minutes (§4.3).
    #[serde(rename = "@microsoft.graph.downloadUrl")]
    pub download_url: Option<String>,
}

impl DriveItem {
    pub fn is_folder(&self) -> bool {
        self.folder.is_some()
    }

    pub fn is_file(&self) -> bool {
        self.file.is_some()
    }

    /// A OneNote notebook (or another package): treat it as a folder of its children.
    pub fn is_package(&self) -> bool {
        self.package.is_some()
    }

    pub fn is_onenote_notebook(&self) -> bool {
        self.package
            .as_ref()
            .and_then(|p| p.package_type.as_deref())
            .is_some_and(|t| t.eq_ignore_ascii_case("oneNote"))
    }

    /// OneDrive for Business and SharePoint give only `quickXorHash` (§4.2).
    pub fn quick_xor_hash(&self) -> Option<&str> {
        self.file
            .as_ref()?
            .hashes
            .as_ref()?
            .quick_xor_hash
            .as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemReference {
    pub drive_id: Option<String>,
    pub drive_type: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub site_id: Option<String>,
}

/// `package` facet of a drive item (`oneNote` for notebooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageFacet {
    #[serde(rename = "type")]
    pub package_type: Option<String>,
}

/// Who did something (`createdBy`, `lastModifiedBy`, a message's `from`): a user, an
/// application or a device, each an `identity`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdentitySet {
    pub user: Option<Identity>,
    pub application: Option<Identity>,
    pub device: Option<Identity>,
}

impl IdentitySet {
    /// The name to show: the user's, else the application's, else the device's.
    pub fn display_name(&self) -> Option<&str> {
        [&self.user, &self.application, &self.device]
            .into_iter()
            .flatten()
            .find_map(|i| i.display_name.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub id: Option<String>,
    pub display_name: Option<String>,
    /// On Teams identities: `aadUser`, `onPremiseAadUser`, `anonymousGuest`, …
    pub user_identity_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFacet {
    pub mime_type: Option<String>,
    pub hashes: Option<Hashes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hashes {
    pub quick_xor_hash: Option<String>,
    pub sha1_hash: Option<String>,
    pub sha256_hash: Option<String>,
    pub crc32_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderFacet {
    pub child_count: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedFacet {
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSystemInfo {
    pub created_date_time: Option<DateTime<Utc>>,
    pub last_modified_date_time: Option<DateTime<Utc>>,
}

/// What `mailboxSettings.userPurpose` says the mailbox is (§3.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MailboxPurpose {
    User,
    Linked,
    Shared,
    Room,
    Equipment,
    Others,
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_domains() {
        let org: Organization = serde_json::from_str(
            r#"{"id":"aaaabbbb-0000-cccc-1111-dddd2222eeee","displayName":"Contoso","verifiedDomains":[
              {"capabilities":"Email, OfficeCommunicationsOnline","isDefault":false,"isInitial":true,"name":"contoso.onmicrosoft.com","type":"Managed"},
              {"capabilities":"Email","isDefault":true,"isInitial":false,"name":"contoso.com","type":"Managed"}],
              "businessPhones":[]}"#,
        )
        .unwrap();
        assert_eq!(org.default_domain(), Some("contoso.com"));
        assert_eq!(org.initial_domain(), Some("contoso.onmicrosoft.com"));
    }

    #[test]
    fn groups_and_teams() {
        let g: Group = serde_json::from_str(
            r#"{"id":"g","groupTypes":["Unified"],"mailEnabled":true,"securityEnabled":false,"resourceProvisioningOptions":["Team"]}"#,
        )
        .unwrap();
        assert!(g.is_microsoft365() && g.is_team() && g.is_mail_enabled());
        let sec: Group =
            serde_json::from_str(r#"{"id":"s","groupTypes":[],"mailEnabled":false}"#).unwrap();
        assert!(!sec.is_microsoft365() && !sec.is_team());
    }

    #[test]
    fn unknown_mailbox_purpose_does_not_fail() {
        let p: MailboxPurpose = serde_json::from_str(r#""unknownFutureValue""#).unwrap();
        assert_eq!(p, MailboxPurpose::Unknown);
        let p: MailboxPurpose = serde_json::from_str(r#""shared""#).unwrap();
        assert_eq!(p, MailboxPurpose::Shared);
    }
}
