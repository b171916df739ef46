//! SharePoint sites beyond discovery (graph-protocol.md §2.1, §4.1): one site, its subsites,
//! a Microsoft 365 group's site, a site's lists and their items as JSON (`$expand=fields`).
//! A site's document libraries are its drives (`TenantClient::site_drives`). Every call here
//! counts resource units against the tenant's OneDrive/SharePoint bucket (§5.3): a single GET
//! costs 1, a listing 2. It must never decide what to back up, only fetch.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::m365::client::TenantClient;
use crate::m365::error::GraphError;
use crate::m365::paging::ItemStream;
use crate::m365::types::{IdentitySet, Site};

/// How deep `site_tree` follows subsites. SharePoint allows deeper nesting, but a loop in what
/// the service answers must not keep a backup walking forever.
const MAX_SUBSITE_DEPTH: usize = 16;

/// A SharePoint list (`GET /sites/{id}/lists`). Document libraries are lists too (template
/// `documentLibrary`); their content is read through the site's drives instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteList {
    pub id: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub web_url: Option<String>,
    pub created_date_time: Option<DateTime<Utc>>,
    pub last_modified_date_time: Option<DateTime<Utc>>,
    pub list: Option<ListInfo>,
}

impl SiteList {
    /// `documentLibrary` lists hold files: back them up as drives, not as items.
    pub fn is_document_library(&self) -> bool {
        self.template()
            .is_some_and(|t| t.eq_ignore_ascii_case("documentLibrary"))
    }

    /// Lists SharePoint keeps for itself (hidden in the browser).
    pub fn is_hidden(&self) -> bool {
        self.list.as_ref().and_then(|l| l.hidden) == Some(true)
    }

    pub fn template(&self) -> Option<&str> {
        self.list.as_ref()?.template.as_deref()
    }
}

/// The `list` facet: what kind of list it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListInfo {
    pub template: Option<String>,
    pub hidden: Option<bool>,
    pub content_types_enabled: Option<bool>,
}

/// One list item with its column values (`fields`, an open type). Every property Graph sent is
/// kept in `other`, so serializing the item back gives the JSON as Microsoft wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListItem {
    pub id: String,
    #[serde(rename = "eTag", skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<IdentitySet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified_by: Option<IdentitySet>,
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl TenantClient {
    /// One site by id (`host,collectionId,webId`), or `None` when it is gone.
    pub async fn site(&self, site_id: &str) -> Result<Option<Site>, GraphError> {
        let request = self.request(&["sites", site_id], &[], self.files())?;
        self.get_optional(request).await
    }

    /// The site of a Microsoft 365 group (its team site), or `None` when it has none yet.
    pub async fn group_site(&self, group_id: &str) -> Result<Option<Site>, GraphError> {
        let request = self.request(&["groups", group_id, "sites", "root"], &[], self.files())?;
        self.get_optional(request).await
    }

    /// The direct subsites of a site (`/sites/{id}/sites`).
    pub fn subsites(&self, site_id: &str) -> ItemStream<Site> {
        self.files_listing(&["sites", site_id, "sites"], &[])
    }

    /// A site and every subsite below it, parents before children. Backing up "a site" means
    /// all of these: each has its own document libraries and lists.
    pub async fn site_tree(&self, site_id: &str) -> Result<Vec<Site>, GraphError> {
        let Some(root) = self.site(site_id).await? else {
            return Ok(Vec::new());
        };
        let mut tree = vec![root];
        let mut level = vec![(site_id.to_string(), 0usize)];
        while let Some((id, depth)) = level.pop() {
            if depth >= MAX_SUBSITE_DEPTH {
                continue;
            }
            let children: Vec<Site> = self.subsites(&id).try_collect().await?;
            for child in children {
                if tree.iter().any(|s| s.id == child.id) {
                    continue;
                }
                level.push((child.id.clone(), depth + 1));
                tree.push(child);
            }
        }
        Ok(tree)
    }

    /// The lists of a site, document libraries included (`SiteList::is_document_library`).
    pub fn site_lists(&self, site_id: &str) -> ItemStream<SiteList> {
        self.files_listing(&["sites", site_id, "lists"], &[])
    }

    /// A list's items with their column values (`$expand=fields`).
    pub fn list_items(&self, site_id: &str, list_id: &str) -> ItemStream<ListItem> {
        self.files_listing(
            &["sites", site_id, "lists", list_id, "items"],
            &[("$expand", "fields")],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_keep_every_property() {
        let json = serde_json::json!({
            "id": "3",
            "eTag": "\"abc,2\"",
            "lastModifiedDateTime": "2026-10-01T08:00:00Z",
            "webUrl": "https://contoso.sharepoint.com/sites/x/Lists/Tasks/3_.000",
            "contentType": {"id": "0x0100", "name": "Item"},
            "fields": {"Title": "Plan", "Status": "Open", "Priority": 2}
        });
        let item: ListItem = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(item.fields["Title"], "Plan");
        assert_eq!(
            serde_json::to_value(&item).unwrap()["contentType"]["name"],
            "Item"
        );
        assert_eq!(
            serde_json::to_value(&item).unwrap()["webUrl"],
            json["webUrl"]
        );
    }

    #[test]
    fn libraries_are_recognised() {
        let list: SiteList = serde_json::from_value(serde_json::json!({
            "id": "l", "displayName": "Documents",
            "list": {"template": "documentLibrary", "hidden": false}
        }))
        .unwrap();
        assert!(list.is_document_library() && !list.is_hidden());
    }
}
