//! Admin consent (graph-protocol.md §1.1): building the URL the browser is sent to, and reading
//! the query string Microsoft redirects back with. It owns only URL building and parsing; it must
//! never treat the returned `tenant` as proven (the doc warns it can be forged) — proving takes a
//! client-credentials token for it (`GraphClient::prove_tenant`).

use url::Url;

use crate::m365::error::GraphError;
use crate::m365::settings::{M365Settings, join_base};
use crate::m365::types::TenantId;

/// Which tenant the consent page is opened for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentTenant {
    /// `organizations`: the admin signs in and their own tenant consents. (`common` is refused
    /// by the doc: personal accounts cannot give admin consent.)
    Organizations,
    /// A known tenant GUID or verified domain, to re-consent an organization already added.
    Tenant(String),
}

impl ConsentTenant {
    fn path_segment(&self) -> &str {
        match self {
            ConsentTenant::Organizations => "organizations",
            ConsentTenant::Tenant(t) => t,
        }
    }
}

/// `{authority}/{tenant}/v2.0/adminconsent?client_id&scope&redirect_uri&state`. Application
/// permissions need the `/.default` scope.
pub fn admin_consent_url(
    settings: &M365Settings,
    tenant: &ConsentTenant,
    state: &str,
) -> Result<Url, GraphError> {
    let segment = tenant.path_segment();
    if segment.is_empty()
        || segment.contains(['/', '?', '#'])
        || segment.eq_ignore_ascii_case("common")
    {
        return Err(GraphError::Settings(format!(
            "not a tenant for admin consent: {segment:?}"
        )));
    }
    let mut url = join_base(
        &settings.authority()?,
        &format!("{segment}/v2.0/adminconsent"),
    )?;
    url.query_pairs_mut()
        .append_pair("client_id", &settings.client_id)
        .append_pair("scope", &settings.scope)
        .append_pair("redirect_uri", settings.redirect_uri.as_str())
        .append_pair("state", state);
    Ok(url)
}

/// A successful consent as the redirect reports it. `tenant` is still a claim, not a proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGrant {
    pub tenant: TenantId,
    /// The granted scopes (space-separated in the query).
    pub scopes: Vec<String>,
}

/// Why consent did not happen, from Microsoft's `error` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentRefusal {
    /// The admin declined (AADSTS65004 UserDeclinedConsent, or `admin_consent` not `True`).
    Declined,
    /// `consent_required`: consent could not be given (e.g. the signed-in user is not an admin).
    ConsentRequired,
    /// `access_denied`: the user cancelled sign-in or consent.
    AccessDenied,
    /// `permission_denied`: "The admin canceled the request" (legacy endpoint).
    PermissionDenied,
    /// Any other `error` value; the description says more.
    Unknown,
}

/// The callback did not report a usable consent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// Microsoft reported an error; `description` is Microsoft's text (with its Trace and
    /// Correlation IDs, which support needs).
    #[error("admin consent refused ({error}): {description}")]
    Refused {
        refusal: ConsentRefusal,
        error: String,
        description: String,
    },
    /// The `state` did not match the one issued: the callback is not the answer to our request.
    #[error("admin consent callback has the wrong state")]
    StateMismatch,
    /// Not a consent callback at all (no tenant, a tenant that is not a GUID).
    #[error("malformed admin consent callback: {0}")]
    Malformed(String),
}

impl ConsentError {
    pub fn refusal(&self) -> Option<ConsentRefusal> {
        match self {
            ConsentError::Refused { refusal, .. } => Some(*refusal),
            _ => None,
        }
    }
}

/// Reads the redirect's query string (without `?`). Values are form-encoded: `+` is a space and
/// `error_description` carries `%0d%0a` between its Trace/Correlation/Timestamp lines.
pub fn parse_consent_callback(
    query: &str,
    expected_state: &str,
) -> Result<ConsentGrant, ConsentError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut tenant = None;
    let mut scope = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    let mut admin_consent = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "tenant" => tenant = Some(value),
            "scope" => scope = Some(value),
            "state" => state = Some(value),
            "error" => error = Some(value),
            "error_description" => description = Some(value),
            "admin_consent" => admin_consent = Some(value),
            _ => {}
        }
    }
    if state.as_deref() != Some(expected_state) {
        return Err(ConsentError::StateMismatch);
    }
    if let Some(error) = error {
        let description = description.unwrap_or_default();
        let refusal = match error.as_str() {
            // The AADSTS number is the documented code; Microsoft only sends it inside the text.
            "consent_required" if description.contains("AADSTS65004") => ConsentRefusal::Declined,
            "consent_required" => ConsentRefusal::ConsentRequired,
            // Entra also reports a declined consent screen as access_denied with AADSTS65004.
            "access_denied" if description.contains("AADSTS65004") => ConsentRefusal::Declined,
            "access_denied" => ConsentRefusal::AccessDenied,
            "permission_denied" => ConsentRefusal::PermissionDenied,
            _ => ConsentRefusal::Unknown,
        };
        return Err(ConsentError::Refused {
            refusal,
            error,
            description,
        });
    }
    if !admin_consent
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(ConsentError::Refused {
            refusal: ConsentRefusal::Declined,
            error: "admin_consent".into(),
            description: format!("admin_consent={}", admin_consent.unwrap_or_default()),
        });
    }
    let tenant = tenant.ok_or_else(|| ConsentError::Malformed("no tenant".into()))?;
    let tenant = tenant
        .parse::<TenantId>()
        .map_err(|_| ConsentError::Malformed(format!("tenant is not a GUID: {tenant:?}")))?;
    let scopes = scope
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Ok(ConsentGrant { tenant, scopes })
}

/// Reads the redirect back from the administrator's sign-in (§1.4): `code` and `state`, or
/// `error` and `error_description`. Returns the code.
pub fn parse_sign_in_callback(query: &str, expected_state: &str) -> Result<String, ConsentError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let (mut code, mut state, mut error, mut description) = (None, None, None, None);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "code" => code = Some(value),
            "state" => state = Some(value),
            "error" => error = Some(value),
            "error_description" => description = Some(value),
            _ => {}
        }
    }
    if state.as_deref() != Some(expected_state) {
        return Err(ConsentError::StateMismatch);
    }
    if let Some(error) = error {
        let description = description.unwrap_or_default();
        let refusal = match error.as_str() {
            "access_denied" if description.contains("AADSTS65004") => ConsentRefusal::Declined,
            "access_denied" => ConsentRefusal::AccessDenied,
            "consent_required" | "interaction_required" | "login_required" => {
                ConsentRefusal::ConsentRequired
            }
            _ => ConsentRefusal::Unknown,
        };
        return Err(ConsentError::Refused {
            refusal,
            error,
            description,
        });
    }
    code.filter(|c| !c.is_empty())
        .ok_or_else(|| ConsentError::Malformed("no code".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> M365Settings {
        M365Settings::new(
            "00001111-aaaa-2222-bbbb-3333cccc4444",
            "s",
            Url::parse("https://console.example/m365/consent").unwrap(),
        )
    }

    #[test]
    fn consent_url_for_organizations() {
        let url = admin_consent_url(&settings(), &ConsentTenant::Organizations, "st 1").unwrap();
        assert_eq!(url.path(), "/organizations/v2.0/adminconsent");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                (
                    "client_id".into(),
                    "00001111-aaaa-2222-bbbb-3333cccc4444".into()
                ),
                (
                    "scope".into(),
                    "https://graph.microsoft.com/.default".into()
                ),
                (
                    "redirect_uri".into(),
                    "https://console.example/m365/consent".into()
                ),
                ("state".into(), "st 1".into()),
            ]
        );
    }

    #[test]
    fn consent_url_refuses_common_and_path_tricks() {
        assert!(
            admin_consent_url(&settings(), &ConsentTenant::Tenant("common".into()), "s").is_err()
        );
        assert!(admin_consent_url(&settings(), &ConsentTenant::Tenant("a/b".into()), "s").is_err());
        let url = admin_consent_url(
            &settings(),
            &ConsentTenant::Tenant("contoso.onmicrosoft.com".into()),
            "s",
        )
        .unwrap();
        assert_eq!(url.path(), "/contoso.onmicrosoft.com/v2.0/adminconsent");
    }

    #[test]
    fn success_callback() {
        let q = "admin_consent=True&tenant=aaaabbbb-0000-cccc-1111-dddd2222eeee&scope=https://graph.microsoft.com/Calendars.Read+https://graph.microsoft.com/Mail.Send&state=12345";
        let grant = parse_consent_callback(q, "12345").unwrap();
        assert_eq!(
            grant.tenant.to_string(),
            "aaaabbbb-0000-cccc-1111-dddd2222eeee"
        );
        assert_eq!(grant.scopes.len(), 2);
    }

    #[test]
    fn declined_callback_keeps_microsofts_description() {
        let q = "admin_consent=True&error=consent_required&error_description=AADSTS65004%3a+The+resource+owner+or+authorization+server+denied+the+request.%0d%0aTrace+ID%3a+x%0d%0aCorrelation+ID%3a+y%0d%0aTimestamp%3a+2019-09-24+18%3a34%3a26Z&state=12345";
        let err = parse_consent_callback(q, "12345").unwrap_err();
        assert_eq!(err.refusal(), Some(ConsentRefusal::Declined));
        match err {
            ConsentError::Refused { description, .. } => {
                assert!(description.starts_with("AADSTS65004: The resource owner"));
                assert!(description.contains("\r\nTrace ID: x"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_refusals() {
        let r = |e: &str| {
            parse_consent_callback(&format!("error={e}&error_description=d&state=s"), "s")
                .unwrap_err()
                .refusal()
        };
        assert_eq!(r("consent_required"), Some(ConsentRefusal::ConsentRequired));
        assert_eq!(r("access_denied"), Some(ConsentRefusal::AccessDenied));
        assert_eq!(
            r("permission_denied"),
            Some(ConsentRefusal::PermissionDenied)
        );
        assert_eq!(r("server_error"), Some(ConsentRefusal::Unknown));
        let declined = parse_consent_callback(
            "error=access_denied&error_description=AADSTS65004%3a+User+declined+to+consent+to+access+the+app.&state=s",
            "s",
        )
        .unwrap_err();
        assert_eq!(declined.refusal(), Some(ConsentRefusal::Declined));
    }

    #[test]
    fn sign_in_callback() {
        assert_eq!(
            parse_sign_in_callback("code=abc&state=s", "s"),
            Ok("abc".to_string())
        );
        assert_eq!(
            parse_sign_in_callback("code=abc&state=t", "s"),
            Err(ConsentError::StateMismatch)
        );
        assert_eq!(
            parse_sign_in_callback(
                "error=access_denied&error_description=the+user+canceled&state=s",
                "s"
            )
            .unwrap_err()
            .refusal(),
            Some(ConsentRefusal::AccessDenied)
        );
        assert!(matches!(
            parse_sign_in_callback("state=s", "s"),
            Err(ConsentError::Malformed(_))
        ));
    }

    #[test]
    fn wrong_state_or_bad_tenant_is_rejected() {
        let q = "admin_consent=True&tenant=aaaabbbb-0000-cccc-1111-dddd2222eeee&state=evil";
        assert_eq!(
            parse_consent_callback(q, "12345"),
            Err(ConsentError::StateMismatch)
        );
        let q = "admin_consent=True&tenant=contoso.com&state=s";
        assert!(matches!(
            parse_consent_callback(q, "s"),
            Err(ConsentError::Malformed(_))
        ));
        let q = "?admin_consent=False&tenant=aaaabbbb-0000-cccc-1111-dddd2222eeee&state=s";
        assert_eq!(
            parse_consent_callback(q, "s").unwrap_err().refusal(),
            Some(ConsentRefusal::Declined)
        );
    }
}
