//! Mail calls for one mailbox (graph-protocol.md §3): folders recursively including hidden ones,
//! message delta per folder with immutable ids, and MIME export as a byte stream. Every call
//! counts against that mailbox's Outlook limits (four at once, 10,000 per 10 minutes). It must
//! never send a request without `Prefer: IdType="ImmutableId"` where ids are returned, or ids
//! would change when a user moves a message.
