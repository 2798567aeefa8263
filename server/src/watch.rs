//! Fan-out of device events to watchers.
//!
//! One broadcast channel carries every event; each watcher filters it by
//! its pattern. The broadcast never waits for a reader: a slow one loses the
//! oldest events and learns how many through a `lagged` event, so a stuck
//! client cannot slow calls or presence handling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thingcall_proto::v1::{device_event::Kind, Closing, DeviceEvent, Lagged, Synced};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::Access;

/// How long a watcher's final `closing` event may wait for room in its buffer.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

/// Events are shared between watchers, never copied per watcher.
pub type SharedEvent = Arc<DeviceEvent>;

/// A watcher's starting state, read a page at a time: given the last
/// device of the previous page (`None` first), the next page, empty at the
/// end. Each page is read under the registry's lock on its own, so a watch
/// of a million devices never holds presence (and calls) up for long.
pub type Snapshot = Box<dyn FnMut(Option<&str>) -> Vec<DeviceEvent> + Send>;

/// A [`Snapshot`] of a list already taken.
#[cfg(test)]
fn snapshot_of(events: Vec<DeviceEvent>) -> Snapshot {
    let mut events = Some(events);
    Box::new(move |_| events.take().unwrap_or_default())
}

/// The sending side, owned by the gateway core.
pub struct Hub {
    tx: broadcast::Sender<SharedEvent>,
    per_watcher: usize,
    closed: watch::Sender<bool>,
    stats: Arc<HubStats>,
}

/// Figures for `/metrics`, shared with the watcher tasks.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Watch streams open now; a watch channel, so a change can be awaited.
    pub watchers: watch::Sender<usize>,
    /// Events watchers missed by reading too slowly.
    pub lagged: AtomicU64,
}

/// Counts a watcher for as long as its task runs, however it ends.
struct Open(Arc<HubStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.watchers.send_modify(|n| *n -= 1);
    }
}

impl Hub {
    /// `capacity`: events buffered for the slowest watcher before it lags.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            per_watcher: capacity.clamp(1, 1024),
            closed: watch::channel(false).0,
            stats: Arc::default(),
        }
    }

    /// Follows the number of open watch streams.
    pub fn watchers(&self) -> watch::Receiver<usize> {
        self.stats.watchers.subscribe()
    }

    /// Watchers open and events they missed.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// Ends every watch stream, each with a final `closing` event (the
    /// gateway is shutting down; open streams would otherwise hold its
    /// HTTP server open forever).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Whether anyone listens; lets producers skip building events.
    pub fn has_watchers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes an event to every watcher; never blocks.
    pub fn send(&self, device: &str, kind: Kind) {
        if self.has_watchers() {
            let _ = self.tx.send(Arc::new(event(device, kind)));
        }
    }

    /// A raw subscription (for waiting on a device to come online).
    pub fn subscribe(&self) -> broadcast::Receiver<SharedEvent> {
        self.tx.subscribe()
    }

    /// Starts a watcher: `initial` (the current state of every match, read
    /// *after* `rx` subscribed, so no change falls in between: a change
    /// during the paging arrives after the snapshot, newest last) then a
    /// `synced` marker, then live events matching `pattern`.
    pub fn watch(
        &self,
        rx: broadcast::Receiver<SharedEvent>,
        initial: Snapshot,
        pattern: String,
        include_events: bool,
        access: Access,
    ) -> ReceiverStream<SharedEvent> {
        let (tx, out) = mpsc::channel(self.per_watcher);
        let closed = self.closed.subscribe();
        self.stats.watchers.send_modify(|n| *n += 1);
        let open = Open(self.stats.clone());
        tokio::spawn(forward(
            rx,
            tx,
            closed,
            initial,
            Filter {
                pattern,
                include_events,
                access,
            },
            open,
        ));
        ReceiverStream::new(out)
    }
}

/// Builds an event stamped now.
pub fn event(device: &str, kind: Kind) -> DeviceEvent {
    DeviceEvent {
        device: device.to_owned(),
        time: Some(SystemTime::now().into()),
        kind: Some(kind),
    }
}

/// Which live events a watcher wants.
struct Filter {
    pattern: String,
    include_events: bool,
    /// Devices the policy hides from this watcher stay hidden.
    access: Access,
}

async fn forward(
    mut rx: broadcast::Receiver<SharedEvent>,
    tx: mpsc::Sender<SharedEvent>,
    mut closed: watch::Receiver<bool>,
    mut initial: Snapshot,
    filter: Filter,
    open: Open,
) {
    let Filter {
        pattern,
        include_events,
        access,
    } = filter;
    let mut devices = 0u32;
    let mut after: Option<String> = None;
    loop {
        let page = initial(after.as_deref());
        let Some(last) = page.last() else { break };
        after = Some(last.device.clone());
        for ev in page {
            devices += 1;
            if tx.send(Arc::new(ev)).await.is_err() {
                return;
            }
        }
    }
    if tx
        .send(Arc::new(event("", Kind::Synced(Synced { devices }))))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let ev = tokio::select! {
            r = rx.recv() => r,
            _ = tx.closed() => return,
            _ = closed.wait_for(|c| *c) => break,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(dropped)) => {
                open.0.lagged.fetch_add(dropped, Ordering::Relaxed);
                Arc::new(event("", Kind::Lagged(Lagged { dropped })))
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let matches = || {
            thingcall_proto::wire::glob_match(&pattern, &ev.device) && access.may_watch(&ev.device)
        };
        let wanted = match &ev.kind {
            Some(Kind::Lagged(_) | Kind::Closing(_)) => true,
            Some(Kind::Event(_)) => include_events && matches(),
            _ => matches(),
        };
        if wanted && tx.send(ev).await.is_err() {
            return;
        }
    }
    let last = event(
        "",
        Kind::Closing(Closing {
            reason: "SHUTTING_DOWN".into(),
        }),
    );
    // Bounded: a reader that stopped reading must not hold shutdown.
    let _ = tokio::time::timeout(CLOSING_GRACE, tx.send(Arc::new(last))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingcall_proto::v1::Device;
    use tokio_stream::StreamExt;

    fn presence(id: &str) -> Kind {
        Kind::Presence(Device {
            id: id.into(),
            online: true,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn initial_then_synced_then_matching_changes() {
        let hub = Hub::new(16);
        let rx = hub.subscribe();
        let mut s = hub.watch(
            rx,
            snapshot_of(vec![event("pump-1", presence("pump-1"))]),
            "pump-*".into(),
            false,
            Access::All,
        );
        hub.send("valve-1", presence("valve-1"));
        hub.send("pump-2", presence("pump-2"));
        let got: Vec<_> = (&mut s)
            .take(3)
            .map(|e| (e.device.clone(), e.kind.clone()))
            .collect()
            .await;
        assert_eq!(got[0].0, "pump-1");
        assert!(matches!(
            got[1].1,
            Some(Kind::Synced(Synced { devices: 1 }))
        ));
        assert_eq!(got[2].0, "pump-2", "valve-1 filtered out");
    }

    #[tokio::test]
    async fn close_sends_a_final_closing_event_then_ends() {
        let hub = Hub::new(16);
        let rx = hub.subscribe();
        let mut s = hub.watch(rx, snapshot_of(vec![]), String::new(), false, Access::All);
        let synced = s.next().await.expect("synced");
        assert!(matches!(synced.kind, Some(Kind::Synced(_))));
        hub.close();
        let last = s.next().await.expect("closing");
        assert!(
            matches!(&last.kind, Some(Kind::Closing(c)) if c.reason == "SHUTTING_DOWN"),
            "{last:?}"
        );
        assert!(s.next().await.is_none(), "the stream ends");
    }

    #[tokio::test]
    async fn slow_watcher_gets_lagged_and_never_blocks_sender() {
        let hub = Hub::new(4);
        let rx = hub.subscribe();
        let mut s = hub.watch(rx, snapshot_of(vec![]), String::new(), false, Access::All);
        // Nobody reads: the sender must still never block.
        for i in 0..100 {
            hub.send(&format!("d{i}"), presence("x"));
        }
        let mut lagged = 0;
        while let Some(ev) = s.next().await {
            if let Some(Kind::Lagged(l)) = &ev.kind {
                lagged += l.dropped;
            }
            if ev.device == "d99" {
                break;
            }
        }
        assert!(lagged > 0, "a lagged event reports the loss");
    }
}
