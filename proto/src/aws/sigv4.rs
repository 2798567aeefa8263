//! AWS Signature Version 4 for presigned URLs (query-string signing), as
//! AWS IoT Core wants for MQTT over WebSockets.
//!
//! Written here over `ring` (already in the tree for rustls) rather than
//! with the `aws-sigv4` crate: a presigned GET with one signed header is
//! about a hundred lines, and `aws-sigv4` brings the `aws-smithy-*` crates
//! and their runtime along. The steps are AWS's: canonical request, string
//! to sign, signing key derived from the secret, date, region and service.
//! The unit tests pin it to AWS's published S3 example.

use std::time::SystemTime;

use ring::{digest, hmac};

use super::credentials::AwsCredentials;

/// The signing algorithm's name, in the URL and the string to sign.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What a presigned `GET` covers.
#[derive(Debug, Clone)]
pub struct Presign<'a> {
    /// The `Host` header value exactly as the request sends it.
    pub host: &'a str,
    /// The URL path, starting with `/` (plain ASCII such as `/mqtt`).
    pub path: &'a str,
    /// AWS region, e.g. `eu-west-1`.
    pub region: &'a str,
    /// AWS service name, e.g. `iotdevicegateway`.
    pub service: &'a str,
    /// The signing time (`X-Amz-Date`).
    pub time: SystemTime,
    /// `X-Amz-Expires` in seconds, when the URL should say how long it
    /// stays valid.
    pub expires: Option<u32>,
    /// The payload's hash as the service wants it: the hex SHA-256 of the
    /// body, or `UNSIGNED-PAYLOAD` (S3).
    pub payload_hash: &'a str,
}

/// The hex SHA-256 of an empty body, the payload hash of a WebSocket GET.
pub fn empty_payload_hash() -> String {
    hex(digest::digest(&digest::SHA256, b"").as_ref())
}

/// `YYYYMMDDTHHMMSSZ` in UTC, the form of `X-Amz-Date`.
pub fn amz_date(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// The signed query string of `p` with `creds`: the `X-Amz-*` parameters,
/// sorted, ending with `X-Amz-Signature`. A session token is NOT in it:
/// services differ on whether it is signed, and AWS IoT wants it appended
/// after signing (see [`super::iot`]).
pub fn presigned_query(p: &Presign<'_>, creds: &AwsCredentials) -> String {
    let date_time = amz_date(p.time);
    let date = &date_time[..8];
    let scope = format!("{date}/{}/{}/aws4_request", p.region, p.service);
    let mut params = vec![
        ("X-Amz-Algorithm", ALGORITHM.to_owned()),
        (
            "X-Amz-Credential",
            format!("{}/{scope}", creds.access_key_id),
        ),
        ("X-Amz-Date", date_time.clone()),
        ("X-Amz-SignedHeaders", "host".to_owned()),
    ];
    if let Some(secs) = p.expires {
        params.push(("X-Amz-Expires", secs.to_string()));
    }
    params.sort();
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "GET\n{}\n{query}\nhost:{}\n\nhost\n{}",
        canonical_path(p.path),
        p.host.trim(),
        p.payload_hash
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{date_time}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let key = signing_key(creds.secret_access_key.expose(), date, p.region, p.service);
    let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    format!("{query}&X-Amz-Signature={signature}")
}

/// The key of one day, region and service, derived from the secret.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mac = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = mac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = mac(k_date.as_ref(), region);
    let k_service = mac(k_region.as_ref(), service);
    let k_signing = mac(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// Each path segment URI-encoded, the slashes kept.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// SigV4's URI encoding: unreserved characters (`A-Z a-z 0-9 - _ . ~`)
/// as they are, every other byte as `%XX` in upper-case hex.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Secret;
    use std::time::Duration;

    pub(crate) fn example_credentials(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
            expires: None,
        }
    }

    fn at(date: &str) -> SystemTime {
        humantime::parse_rfc3339(date).unwrap()
    }

    /// AWS's example in "Authenticating Requests: Using Query Parameters
    /// (AWS Signature Version 4)" of the Amazon S3 API reference.
    #[test]
    fn the_published_s3_example() {
        let p = Presign {
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            region: "us-east-1",
            service: "s3",
            time: at("2013-05-24T00:00:00Z"),
            expires: Some(86400),
            payload_hash: "UNSIGNED-PAYLOAD",
        };
        let q = presigned_query(&p, &example_credentials(None));
        assert_eq!(
            q,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    /// An AWS IoT vector computed once with Python's hmac and hashlib
    /// (the same steps written independently), to pin the service, the
    /// empty-body hash and the absent X-Amz-Expires.
    #[test]
    fn an_iot_device_gateway_vector() {
        let hash = empty_payload_hash();
        assert_eq!(
            hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut p = Presign {
            host: "abc123-ats.iot.eu-west-1.amazonaws.com",
            path: "/mqtt",
            region: "eu-west-1",
            service: "iotdevicegateway",
            time: at("2026-12-01T22:15:00Z"),
            expires: None,
            payload_hash: &hash,
        };
        let q = presigned_query(&p, &example_credentials(None));
        assert!(q.ends_with(
            "&X-Amz-Signature=a5e1049a28378c69092bd89735e329d2a9d388420c41addbe6561caa946e6691"
        ));
        p.expires = Some(300);
        let q = presigned_query(&p, &example_credentials(None));
        assert!(q.contains("&X-Amz-Expires=300&"));
        assert!(q.ends_with(
            "&X-Amz-Signature=274501652eb7fdf9d57c52887604e35a0fce705846bf44a474651d5c083cdedb"
        ));
    }

    #[test]
    fn dates_and_encoding() {
        assert_eq!(amz_date(at("2013-05-24T00:00:00Z")), "20130524T000000Z");
        assert_eq!(
            amz_date(at("2026-12-01T22:15:00Z") + Duration::from_millis(999)),
            "20261201T221500Z"
        );
        assert_eq!(uri_encode("a/b c+~"), "a%2Fb%20c%2B~");
        assert_eq!(canonical_path("/mqtt"), "/mqtt");
        assert_eq!(canonical_path(""), "/");
    }
}
