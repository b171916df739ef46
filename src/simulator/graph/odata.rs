//! OData query options as Graph implements them on the simulated paths: `$select` projection,
//! `$top` bounds, the `$filter` subset the protocol doc lists (eq, startswith, any, and/or),
//! opaque paging and delta tokens, and collection envelopes. It never knows entity specifics.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::GraphError;

/// Parsed query string of a Graph request.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Result<Self, GraphError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|_| GraphError::bad_request("BadRequest", "Invalid query string."))?;
        // OData options are case-insensitive in the name and may omit the `$` on v1.0.
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }

    pub fn select(&self) -> Option<Vec<String>> {
        self.get("$select").map(|s| {
            s.split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        })
    }

    /// `$top` within `1..=max`, else Graph's 400.
    pub fn top(&self, max: usize) -> Result<Option<usize>, GraphError> {
        match self.get("$top") {
            None => Ok(None),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(GraphError::bad_request(
                    "Request_BadRequest",
                    &format!(
                        "Invalid page size specified: '{text}'. Must be between 1 and {max} inclusive."
                    ),
                )),
            },
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Keeps `id`, annotations and the selected properties. Unknown names give Graph's 400.
pub fn project(
    entity: &Value,
    select: Option<&[String]>,
    type_name: &str,
    default: Option<&[&str]>,
) -> Result<Value, GraphError> {
    let Value::Object(map) = entity else {
        return Ok(entity.clone());
    };
    let wanted: Vec<String> = match (select, default) {
        (Some(fields), _) => {
            for field in fields {
                if field != "*" && !map.contains_key(field.as_str()) {
                    return Err(GraphError::bad_request(
                        "Request_BadRequest",
                        &format!(
                            "Could not find a property named '{field}' on type 'microsoft.graph.{type_name}'."
                        ),
                    ));
                }
            }
            if fields.iter().any(|f| f == "*") {
                return Ok(entity.clone());
            }
            fields.to_vec()
        }
        (None, Some(default)) => default.iter().map(|s| (*s).to_owned()).collect(),
        (None, None) => return Ok(entity.clone()),
    };
    let mut out = Map::new();
    for (key, value) in map {
        if key == "id"
            || key.starts_with('@')
            || key.contains("@odata")
            || wanted.iter().any(|w| w == key)
        {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(out))
}

/// A `$filter` expression.
#[derive(Debug, Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Eq(String, Value),
    StartsWith(String, String),
    Any(String, Value),
    /// `ge`, `gt`, `le`, `lt`, `ne` on strings, numbers and date-times.
    Compare(String, String, Value),
}

fn literal(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Some(Value::String(inner.replace("''", "'")));
    }
    match text {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        // Date-time literals are unquoted in OData: `receivedDateTime ge 2026-01-01T00:00:00Z`.
        _ => text.parse::<i64>().ok().map(|n| json!(n)).or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| {
                json!(
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
        }),
    }
}

fn split_keyword<'a>(text: &'a str, keyword: &str) -> Vec<&'a str> {
    // Splits on ` and `/` or ` outside quotes and parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let bytes = text.as_bytes();
    let pattern = format!(" {keyword} ");
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ => {}
        }
        // Byte-wise, case-insensitive: slicing `text` here could split a multi-byte character.
        if !quoted
            && depth == 0
            && bytes.len() >= i + pattern.len()
            && bytes[i..i + pattern.len()].eq_ignore_ascii_case(pattern.as_bytes())
        {
            parts.push(&text[start..i]);
            i += pattern.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

pub fn parse_filter(text: &str) -> Result<Filter, GraphError> {
    let unsupported = || GraphError::bad_request("Request_UnsupportedQuery", "Unsupported Query.");
    let text = text.trim();
    let ors = split_keyword(text, "or");
    if ors.len() > 1 {
        return Ok(Filter::Or(
            ors.into_iter()
                .map(parse_filter)
                .collect::<Result<_, _>>()?,
        ));
    }
    let ands = split_keyword(text, "and");
    if ands.len() > 1 {
        return Ok(Filter::And(
            ands.into_iter()
                .map(parse_filter)
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        return parse_filter(inner);
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("startswith(") {
        let inner = text
            .get(11..text.len().saturating_sub(1))
            .ok_or_else(unsupported)?;
        let (property, value) = inner.split_once(',').ok_or_else(unsupported)?;
        let Some(Value::String(prefix)) = literal(value) else {
            return Err(unsupported());
        };
        return Ok(Filter::StartsWith(property.trim().to_owned(), prefix));
    }
    // `groupTypes/any(c:c eq 'Unified')`, any casing of `any`.
    if let Some(pos) = lower.find("/any(") {
        let property = text[..pos].trim().to_owned();
        let inner = text
            .get(pos + 5..text.len().saturating_sub(1))
            .ok_or_else(unsupported)?;
        let (_, condition) = inner.split_once(':').ok_or_else(unsupported)?;
        let (_, value) = condition.split_once(" eq ").ok_or_else(unsupported)?;
        return Ok(Filter::Any(
            property,
            literal(value).ok_or_else(unsupported)?,
        ));
    }
    for op in ["ge", "gt", "le", "lt", "ne"] {
        if let Some((property, value)) = text.split_once(&format!(" {op} ")) {
            return Ok(Filter::Compare(
                property.trim().to_owned(),
                op.to_owned(),
                literal(value).ok_or_else(unsupported)?,
            ));
        }
    }
    if let Some((property, value)) = text.split_once(" eq ") {
        return Ok(Filter::Eq(
            property.trim().to_owned(),
            literal(value).ok_or_else(unsupported)?,
        ));
    }
    Err(unsupported())
}

fn lookup<'a>(entity: &'a Value, path: &str) -> &'a Value {
    path.split('/').fold(entity, |value, part| &value[part])
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

pub fn matches(filter: &Filter, entity: &Value) -> bool {
    match filter {
        Filter::And(all) => all.iter().all(|f| matches(f, entity)),
        Filter::Or(any) => any.iter().any(|f| matches(f, entity)),
        Filter::Eq(property, value) => same(lookup(entity, property), value),
        Filter::StartsWith(property, prefix) => lookup(entity, property)
            .as_str()
            .is_some_and(|s| s.to_lowercase().starts_with(&prefix.to_lowercase())),
        Filter::Compare(property, op, value) => {
            let found = lookup(entity, property);
            let ordering = match (found, value) {
                (Value::String(a), Value::String(b)) => match (
                    chrono::DateTime::parse_from_rfc3339(a),
                    chrono::DateTime::parse_from_rfc3339(b),
                ) {
                    (Ok(x), Ok(y)) => Some(x.cmp(&y)),
                    _ => Some(a.cmp(b)),
                },
                (Value::Number(a), Value::Number(b)) => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y)),
                _ => None,
            };
            match (op.as_str(), ordering) {
                ("ne", _) => !same(found, value),
                ("ge", Some(o)) => o.is_ge(),
                ("gt", Some(o)) => o.is_gt(),
                ("le", Some(o)) => o.is_le(),
                ("lt", Some(o)) => o.is_lt(),
                _ => false,
            }
        }
        Filter::Any(property, value) => lookup(entity, property)
            .as_array()
            .is_some_and(|items| items.iter().any(|item| same(item, value))),
    }
}

/// Opaque tokens: base64url of a small JSON state, like Graph's own opaque blobs.
pub fn encode_token(state: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state.to_string())
}

pub fn decode_token(token: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `{"@odata.context":…, "value":[…], "@odata.nextLink"|"@odata.deltaLink":…}`.
pub fn collection(
    context: String,
    items: Vec<Value>,
    next: Option<String>,
    delta: Option<String>,
) -> Value {
    let mut out = Map::new();
    out.insert("@odata.context".to_owned(), Value::String(context));
    if let Some(next) = next {
        out.insert("@odata.nextLink".to_owned(), Value::String(next));
    }
    if let Some(delta) = delta {
        out.insert("@odata.deltaLink".to_owned(), Value::String(delta));
    }
    out.insert("value".to_owned(), Value::Array(items));
    Value::Object(out)
}

/// Query-string escaping for values we put into links.
pub fn escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
