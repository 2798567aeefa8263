//! WatchDevice as Server-Sent Events: one `event:` per kind (presence,
//! synced, invocation, lagged, event), an increasing `id:`, JSON `data:`,
//! and a heartbeat comment every 15 s so proxies keep the stream open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio_stream::StreamExt;

use super::extract::{Path, Query};
use super::{json, ApiError};
use crate::auth::Access;
use crate::gateway::Gateway;

const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventsQuery {
    #[serde(default)]
    target: String,
    #[serde(default)]
    include_events: bool,
}

pub(super) async fn device_events(
    State(core): State<Arc<Gateway>>,
    access: Access,
    Path(target): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    stream(&core, &access, &target, q.include_events)
}

pub(super) async fn events(
    State(core): State<Arc<Gateway>>,
    access: Access,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    stream(&core, &access, &q.target, q.include_events)
}

fn stream(
    core: &Gateway,
    access: &Access,
    target: &str,
    include_events: bool,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut id = 0u64;
    let events = core.watch(access, target, include_events)?.map(move |ev| {
        id += 1;
        let (name, body) = json::event(&ev);
        Ok(Event::default()
            .id(id.to_string())
            .event(name)
            .data(body.to_string()))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}
