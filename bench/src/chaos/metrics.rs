//! Reading the gateway's `/metrics` page: after the last call resolved,
//! `thingcall_invocations_in_flight` must come down to 0 (a call left in
//! the correlation table is a leak, and would hold its memory forever).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The gauge of calls waiting for their device's reply.
pub const IN_FLIGHT: &str = "thingcall_invocations_in_flight";
/// Time between reads while waiting for the gauge to drain.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The value of the unlabelled metric `name` on a Prometheus text page.
pub fn gauge(page: &str, name: &str) -> Option<u64> {
    page.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

/// `GET {server}/metrics` once.
async fn page(server: &str) -> Result<String, String> {
    let uri = format!("{}/metrics", server.trim_end_matches('/'));
    let uri: http::Uri = uri.parse().map_err(|e| format!("{uri}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client
        .get(uri.clone())
        .await
        .map_err(|e| format!("GET {uri}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {uri}: {}", resp.status()));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {uri}: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| format!("GET {uri}: not UTF-8"))
}

/// Reads [`IN_FLIGHT`] until it is 0 or `within` has passed, and returns
/// the last value read (`None` when the page never had it).
pub async fn drained_in_flight(server: &str, within: Duration) -> Result<Option<u64>, String> {
    let until = Instant::now() + within;
    loop {
        let value = gauge(&page(server).await?, IN_FLIGHT);
        if value == Some(0) || Instant::now() >= until {
            return Ok(value);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_unlabelled_gauge() {
        let page = "# HELP thingcall_invocations_in_flight Calls.\n\
                    # TYPE thingcall_invocations_in_flight gauge\n\
                    thingcall_invocations_in_flight_total 9\n\
                    thingcall_invocations_in_flight 3\n";
        assert_eq!(gauge(page, IN_FLIGHT), Some(3));
        assert_eq!(
            gauge("thingcall_invocations_in_flight 0\n", IN_FLIGHT),
            Some(0)
        );
        assert_eq!(gauge("other 1\n", IN_FLIGHT), None);
    }
}
