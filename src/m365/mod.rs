//! The Microsoft 365 client: identity (admin consent, app-only tokens), directory, mail, drives,
//! sites and the throttling governor. It knows nothing of actix-web or sea-orm.
