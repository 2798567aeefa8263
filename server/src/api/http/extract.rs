//! The HTTP surfaces' extractors: axum's `Path` and `Query`, answering a
//! rejection the way every other bad input is answered (`INVALID_ARGUMENT`
//! through the one error mapping, so the documented JSON error body) rather
//! than with axum's plain-text 400, and refusing invalid UTF-8 in a query
//! instead of replacing it with U+FFFD. axum's `Query` decodes with
//! `form_urlencoded`, which is lossy: `target=%FF` would arrive as `"\u{FFFD}"`,
//! a valid id that could reach MQTT. Here every percent-decoded name and
//! value is checked first; only a query that is UTF-8 throughout goes on to
//! axum's decoding, which is then exact.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Uri};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::error::Error;

/// Path parameters, percent-decoded and UTF-8, or `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            // "Invalid URL: Invalid UTF-8 in `target`" and the like.
            Err(rejection) => Err(Error::invalid(rejection.body_text()).into()),
        }
    }
}

/// Query parameters by [`query`], or `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(Query(query(&parts.uri)?))
    }
}

/// The query of `uri` as `T`: every name and value must be UTF-8 once
/// percent-decoded, and `T` must accept them (a number where one is
/// wanted, no field twice). The seed `/invoke` calls this itself, to answer
/// in its own body shape.
pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, Error> {
    let raw = uri.query().unwrap_or_default();
    for pair in raw.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode_str(name)
            .decode_utf8()
            .map_err(|_| Error::invalid("a query parameter's name is not UTF-8"))?;
        if percent_decode_str(value).decode_utf8().is_err() {
            return Err(Error::invalid(format!(
                "query parameter {name:?} is not UTF-8"
            )));
        }
    }
    match axum::extract::Query::<T>::try_from_uri(uri) {
        Ok(axum::extract::Query(v)) => Ok(v),
        // "Failed to deserialize query string: pageSize: invalid digit ..."
        Err(rejection) => Err(Error::invalid(rejection.body_text())),
    }
}

/// Whether an Invoke body of this content type is read as JSON: JSON
/// (`application/json`, any `application/...+json`), none, or
/// `application/x-www-form-urlencoded`, which `curl -d` sends unless told
/// otherwise, so one-liners without `-H` keep working. Anything else (text,
/// bytes, a form upload) is refused rather than guessed at.
pub fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(v) = v.to_str() else {
        return false;
    };
    let essence = v.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence == "application/x-www-form-urlencoded"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use thingcall_proto::Reason;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Q {
        target: Option<String>,
        page_size: Option<i32>,
    }

    fn parse(q: &str) -> Result<Q, Error> {
        query(&format!("/x?{q}").parse().unwrap())
    }

    #[test]
    fn queries_are_exact_or_refused() {
        let q = parse("target=pump-%C3%A9+1&pageSize=5").unwrap();
        assert_eq!(q.target.as_deref(), Some("pump-é 1"));
        assert_eq!(q.page_size, Some(5));
        assert!(parse("").unwrap().target.is_none());
        for bad in [
            "target=%FF",
            "target=a%C3",
            "%FF=1",
            "pageSize=abc",
            "pageSize=99999999999",
            "target=a&target=b",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().reason(),
                Reason::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn json_bodies_by_content_type() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            json_content_type(&h)
        };
        assert!(json_content_type(&HeaderMap::new()));
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
            "application/x-www-form-urlencoded",
        ] {
            assert!(with(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
        ] {
            assert!(!with(bad), "{bad}");
        }
    }
}
