//! Device queries of the core: one device, a page of devices, and the
//! watch stream. They read the presence registry and never touch MQTT.

use thingcall_proto::v1::{self, device_event::Kind};
use thingcall_proto::wire;
use tokio_stream::wrappers::ReceiverStream;

use super::Gateway;
use crate::auth::Access;
use crate::error::Error;
use crate::presence::DeviceState;
use crate::validate;
use crate::watch::SharedEvent;

impl Gateway {
    /// One device's presence, if `access` may see it.
    pub fn get_device(&self, access: &Access, id: &str) -> Result<v1::Device, Error> {
        wire::validate_id("target", id)?;
        access.check_list()?;
        if !access.may_list(id) {
            return Err(Error::PermissionDenied(format!(
                "the caller may not see device {id}"
            )));
        }
        let reg = self.registry.read();
        reg.get(id)
            .map(|s| device_proto(id, s))
            .ok_or_else(|| Error::DeviceNotFound(id.into()))
    }

    /// Waits until the registry shows device `id` online: a device that
    /// says it is online is not yet one the gateway can list or call.
    pub async fn wait_seen_online(&self, id: &str) {
        let mut changes = self.presence_seq.subscribe();
        while !self.registry.read().get(id).is_some_and(|s| s.online) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// A page of the devices matching `pattern` that `access` may see,
    /// after `page_token`.
    pub fn list_devices(
        &self,
        access: &Access,
        pattern: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<v1::ListDevicesResponse, Error> {
        validate::pattern(pattern)?;
        let size = match page_size {
            0 => 1000,
            n if (1..=10_000).contains(&n) => n as usize,
            n => {
                return Err(Error::invalid(format!(
                    "page_size {n} is outside 0..=10000"
                )))
            }
        };
        access.check_list()?;
        let after = (!page_token.is_empty()).then_some(page_token);
        let reg = self.registry.read();
        let mut devices: Vec<v1::Device> = reg
            .list(pattern, after)
            .filter(|(id, _)| access.may_list(id))
            .take(size + 1)
            .map(|(id, s)| device_proto(id, s))
            .collect();
        let next_page_token = if devices.len() > size {
            devices.truncate(size);
            devices.last().map(|d| d.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(v1::ListDevicesResponse {
            devices,
            next_page_token,
        })
    }

    /// Current state of every matching device `access` may see, then changes.
    pub fn watch(
        &self,
        access: &Access,
        pattern: &str,
        include_events: bool,
    ) -> Result<ReceiverStream<SharedEvent>, Error> {
        validate::pattern(pattern)?;
        access.check_watch()?;
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        let rx = self.hub.subscribe();
        let (registry, glob, who) = (self.registry.clone(), pattern.to_owned(), access.clone());
        let initial: crate::watch::Snapshot = Box::new(move |after| {
            registry
                .read()
                .list(&glob, after)
                .filter(|(id, _)| who.may_watch(id))
                .take(WATCH_PAGE)
                .map(|(id, s)| crate::watch::event(id, Kind::Presence(device_proto(id, s))))
                .collect()
        });
        Ok(self.hub.watch(
            rx,
            initial,
            pattern.to_owned(),
            include_events,
            access.clone(),
        ))
    }
}

/// Devices a watch's starting state reads per hold of the registry lock.
const WATCH_PAGE: usize = 256;

/// The API's view of one registry entry.
pub(crate) fn device_proto(id: &str, s: &DeviceState) -> v1::Device {
    v1::Device {
        id: id.to_owned(),
        online: s.online,
        methods: s.methods.to_vec(),
        since: Some(s.since.into()),
        session: s.session.clone(),
    }
}
