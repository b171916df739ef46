//! Identity: admin consent, the administrator's sign-in that proves who consented, and app-only
//! tokens. It owns talking to the identity platform
//! (`{authority}/{tenant}/...`); it must never call Graph itself — proving a tenant reads
//! `organization` through the client, with a token from here.

mod admin_signin;
mod consent;
mod tokens;

pub(crate) use admin_signin::AdminSignIn;
pub use admin_signin::{AdminSignInError, AdminSignInStart, CONSENTING_ROLES, ProvenAdmin};
pub use consent::{
    ConsentError, ConsentGrant, ConsentRefusal, ConsentTenant, admin_consent_url,
    parse_consent_callback, parse_sign_in_callback,
};
pub(crate) use tokens::{OAuthHttp, TokenProvider};
