//! Fetching export streams in Microsoft's batches of at most 20 items. Storage asks for items one
//! by one, in path order, a few at a time; the batches are cut in that same order, so the first
//! item of a batch to be asked for fetches the whole batch with one request and its neighbours
//! take their streams from it. A stream is dropped from memory as soon as its item took it, so
//! memory holds at most the batches in flight, never the mailbox.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::m365::{EXPORT_BATCH, ExportedItem, MailboxRef, TenantClient};

use super::super::RequestCounter;

type BatchResult = Result<Mutex<HashMap<String, Result<Bytes, String>>>, String>;

pub struct ExportLoader {
    tenant: TenantClient,
    mailbox: MailboxRef,
    requests: RequestCounter,
    batches: Vec<Vec<String>>,
    batch_of: HashMap<String, usize>,
    loaded: Vec<OnceCell<BatchResult>>,
}

impl ExportLoader {
    /// `ids` in the order their items will be asked for.
    pub fn new(
        tenant: TenantClient,
        mailbox: MailboxRef,
        requests: RequestCounter,
        ids: Vec<String>,
    ) -> Arc<Self> {
        let batches: Vec<Vec<String>> = ids.chunks(EXPORT_BATCH).map(<[String]>::to_vec).collect();
        let batch_of = batches
            .iter()
            .enumerate()
            .flat_map(|(index, batch)| batch.iter().map(move |id| (id.clone(), index)))
            .collect();
        let loaded = batches.iter().map(|_| OnceCell::new()).collect();
        Arc::new(Self {
            tenant,
            mailbox,
            requests,
            batches,
            batch_of,
            loaded,
        })
    }

    /// The export stream of one item: from its batch, or alone when it was not planned in one.
    pub async fn fetch(self: Arc<Self>, id: String) -> io::Result<Bytes> {
        let Some(&index) = self.batch_of.get(&id) else {
            return self.fetch_alone(&id).await;
        };
        let batch = self.loaded[index]
            .get_or_init(|| self.load(index))
            .await
            .as_ref()
            .map_err(|err| io::Error::other(err.clone()))?;
        let taken = batch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
        match taken {
            Some(result) => result.map_err(io::Error::other),
            // Asked twice (storage never does): fetch it again rather than fail.
            None => self.fetch_alone(&id).await,
        }
    }

    async fn load(&self, index: usize) -> BatchResult {
        self.requests.add(1);
        let exported = self
            .tenant
            .export_mailbox_items(&self.mailbox, &self.batches[index])
            .await
            .map_err(|err| err.to_string())?;
        Ok(Mutex::new(
            exported
                .into_iter()
                .map(|item| (item.item_id.clone(), item_result(item)))
                .collect(),
        ))
    }

    async fn fetch_alone(&self, id: &str) -> io::Result<Bytes> {
        self.requests.add(1);
        let mut exported = self
            .tenant
            .export_mailbox_items(&self.mailbox, &[id.to_string()])
            .await
            .map_err(|err| io::Error::other(err.to_string()))?;
        match exported.pop() {
            Some(item) => item_result(item).map_err(io::Error::other),
            None => Err(io::Error::other(
                "Microsoft returned no export for the item",
            )),
        }
    }
}

fn item_result(item: ExportedItem) -> Result<Bytes, String> {
    match item.result {
        Ok(data) => Ok(data.data),
        Err(error) => Err(format!(
            "Microsoft could not export the item: {} ({})",
            error.message, error.code
        )),
    }
}
