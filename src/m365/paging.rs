//! Paging (graph-protocol.md §2.1): a collection is a stream of items across pages, following
//! each `@odata.nextLink` exactly as given until there is none. It owns the page loop; it must
//! never build a next-page URL itself (Graph forbids editing `$skiptoken`) and never follow a
//! link off the Graph origin. Extra headers are resent on every page, as the doc requires.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::m365::error::GraphError;
use crate::m365::http::{Executor, GraphRequest};
use crate::m365::types::TenantId;

/// Items of a collection, fetched page by page as the stream is polled.
pub type ItemStream<T> = Pin<Box<dyn Stream<Item = Result<T, GraphError>> + Send>>;

#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub(crate) value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    pub(crate) next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub(crate) delta_link: Option<String>,
}

/// Streams every item of the collection `first` points at. A page may be empty and still have a
/// next link; the stream just moves on.
pub(crate) fn paged<T>(
    executor: Arc<Executor>,
    tenant: TenantId,
    first: GraphRequest,
) -> ItemStream<T>
where
    T: DeserializeOwned + Send + 'static,
{
    // The state is what to do next: fetch a page, report a refused link (after the items of the
    // page that carried it), or stop.
    let pages = futures::stream::try_unfold(
        Ok(Some(first)),
        move |next: Result<Option<GraphRequest>, GraphError>| {
            let executor = executor.clone();
            async move {
                let Some(request) = next? else {
                    return Ok::<_, GraphError>(None);
                };
                let page: Page<T> = executor.get_json(tenant, &request).await?;
                let next = match page.next_link {
                    Some(link) => executor
                        .graph_link(&link)
                        .map(|url| Some(request.with_url(url))),
                    None => Ok(None),
                };
                Ok(Some((page.value, next)))
            }
        },
    );
    Box::pin(
        pages
            .map_ok(|items| futures::stream::iter(items.into_iter().map(Ok)))
            .try_flatten()
            .fuse(),
    )
}
