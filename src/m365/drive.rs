//! Drive calls (graph-protocol.md §4): user, group and site drives, `root/delta` per drive and
//! content download. Each counts resource units against the tenant's OneDrive/SharePoint
//! bucket. It must never send the bearer token to the pre-authenticated download URL.
