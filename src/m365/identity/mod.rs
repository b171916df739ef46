//! Identity: admin consent and app-only tokens. It owns talking to the identity platform
//! (`{authority}/{tenant}/...`); it must never call Graph itself — proving a tenant reads
//! `organization` through the client, with a token from here.

mod consent;
mod tokens;

pub use consent::{
    ConsentError, ConsentGrant, ConsentRefusal, ConsentTenant, admin_consent_url,
    parse_consent_callback,
};
pub(crate) use tokens::{OAuthHttp, TokenProvider};
