//! What a method handler sees ([`Request`]), what it answers ([`Reply`]) and
//! the registry of handlers a device serves ([`Handlers`]).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// One method call as the device received it, handed to a handler so it can
/// act on the payload and on whatever the caller attached.
#[derive(Clone, Debug)]
pub struct Request {
    /// The device the request was addressed to (handlers are shared by many
    /// devices and may want to answer differently per device).
    pub device: String,
    /// The method name from the request topic.
    pub method: String,
    /// The request payload, untouched.
    pub payload: Bytes,
    /// The request's MQTT ContentType, when the caller set one.
    pub content_type: Option<String>,
    /// Every MQTT user property of the request, in order, including the
    /// contract's own (`deadline`, `traceparent`, ...) and any a broker added.
    pub user_properties: Vec<(String, String)>,
    /// The caller's deadline (from the `deadline` user property), so a long
    /// handler can give up once nobody waits for its answer any more.
    pub deadline: Option<SystemTime>,
}

/// A handler's answer: an HTTP-like status, a payload and optionally a
/// content type, sent back to the caller's ResponseTopic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP-like status carried in the `status` user property (200 = OK).
    pub status: i32,
    /// The reply payload.
    pub payload: Bytes,
    /// MQTT ContentType of the reply, when known.
    pub content_type: Option<String>,
    reconnect_after: Option<Duration>,
}

impl Reply {
    /// A successful (status 200) reply carrying `payload`.
    pub fn ok(payload: impl Into<Bytes>) -> Reply {
        Reply::status(200, payload)
    }

    /// A reply with an explicit status, for failures the device reports
    /// itself (the gateway passes the status through to the caller).
    pub fn status(status: i32, payload: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            payload: payload.into(),
            content_type: None,
            reconnect_after: None,
        }
    }

    /// Sets the reply's MQTT ContentType so callers can decode the payload.
    pub fn with_content_type(mut self, ct: impl Into<String>) -> Reply {
        self.content_type = Some(ct.into());
        self
    }

    /// After this reply is delivered to the broker, drop the MQTT connection
    /// without a DISCONNECT (so the broker publishes the Will) and reconnect
    /// after `after`. This is how a simulated device "reboots".
    pub fn then_reconnect(mut self, after: Duration) -> Reply {
        self.reconnect_after = Some(after);
        self
    }

    /// The pause requested by [`Reply::then_reconnect`], if any.
    pub(crate) fn reconnect_after(&self) -> Option<Duration> {
        self.reconnect_after
    }
}

/// The boxed future a stored handler returns.
type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;
/// A stored handler: type-erased so handlers of any closure type fit one map.
type Handler = Arc<dyn Fn(Request) -> ReplyFuture + Send + Sync>;

/// A set of method handlers shared by any number of devices (cheap to
/// clone: an `Arc` inside), so thousands of simulated devices do not each
/// carry their own copy.
#[derive(Clone, Default)]
pub struct Handlers {
    map: Arc<HashMap<String, Handler>>,
}

impl Handlers {
    /// An empty set; every method answers 501 until one is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the handler for method `name`. Builder style so a
    /// set reads as one expression. `name` should satisfy the wire contract's
    /// id rules (`thingcall_proto::wire::validate_id`), otherwise no request
    /// can ever address it.
    pub fn method<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(f(req)) as ReplyFuture);
        Arc::make_mut(&mut self.map).insert(name.to_owned(), handler);
        self
    }

    /// The method names, sorted, as announced in the presence document.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.map.keys().cloned().collect();
        names.sort();
        names
    }

    /// Starts the handler for `req.method`, or `None` when there is none.
    pub(crate) fn call(&self, req: Request) -> Option<ReplyFuture> {
        self.map.get(&req.method).map(|h| h(req))
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("methods", &self.names())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> Request {
        Request {
            device: "d1".into(),
            method: method.into(),
            payload: Bytes::from_static(b"hi"),
            content_type: None,
            user_properties: Vec::new(),
            deadline: None,
        }
    }

    #[tokio::test]
    async fn registry() {
        let h = Handlers::new()
            .method("zeta", |r: Request| async move { Reply::ok(r.payload) })
            .method("alpha", |_| async { Reply::status(418, "teapot") });
        assert_eq!(h.names(), ["alpha", "zeta"]);
        let reply = h.call(request("zeta")).unwrap().await;
        assert_eq!(reply, Reply::ok("hi"));
        assert_eq!(h.call(request("alpha")).unwrap().await.status, 418);
        assert!(h.call(request("missing")).is_none());
        // Clones share the map; adding to a clone does not change the original.
        let more = h.clone().method("beta", |_| async { Reply::ok("") });
        assert_eq!(h.names().len(), 2);
        assert_eq!(more.names(), ["alpha", "beta", "zeta"]);
    }

    #[test]
    fn reply_builders() {
        let r = Reply::ok("x").with_content_type("text/plain");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert_eq!(r.reconnect_after(), None);
        let r = r.then_reconnect(Duration::from_millis(5));
        assert_eq!(r.reconnect_after(), Some(Duration::from_millis(5)));
    }
}
