//! One HTTP/2 connection of the cheap load path, on its own thread with a
//! blocking socket: it keeps its share of the calls in flight, writes every
//! new request of a round in one `write`, and reads whatever the gateway
//! sent in one `read`. At c1 that is one write and one blocking read per
//! call (no poller, no task wakeup); under load, many calls per syscall.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use thingcall_client::proto::InvokeResponse;

use super::wire::{self, Frame};
use super::{Plan, Shared};
use crate::breakdown::{Breakdown, Figures};
use crate::modes::status_outcome;
use crate::tally::{Outcome, Tally};

/// What one connection measured.
pub struct Measured {
    pub tally: Tally,
    pub breakdown: Option<Breakdown>,
}

/// A call in flight.
struct Call {
    began: Instant,
    /// The reply's message bytes so far (gRPC framing included).
    message: Vec<u8>,
    /// A header block spread over CONTINUATION frames.
    block: Vec<u8>,
}

/// The connection's state.
struct Conn<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    sock: TcpStream,
    decoder: loona_hpack::Decoder<'static>,
    calls: HashMap<u32, Call>,
    /// Calls' buffers kept for reuse.
    spare: Vec<Call>,
    next_stream: u32,
    /// How many of this connection's calls may be in flight.
    limit: usize,
    send_window: i64,
    unacked_recv: u32,
    out: Vec<u8>,
    tally: Tally,
    breakdown: Option<Breakdown>,
    taking: bool,
}

/// Runs connection `index` until its calls are done: the count is reached
/// or the clock stops the phase, and every call in flight has ended.
pub fn run(plan: &Plan, shared: &Shared, share: usize) -> io::Result<Measured> {
    let sock = TcpStream::connect(&plan.authority)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(plan.give_up))?;
    let mut conn = Conn {
        plan,
        shared,
        sock,
        decoder: loona_hpack::Decoder::new(),
        calls: HashMap::with_capacity(share),
        spare: Vec::new(),
        next_stream: 1,
        limit: share,
        send_window: i64::from(wire::DEFAULT_WINDOW),
        unacked_recv: 0,
        out: wire::preface(),
        tally: Tally::default(),
        breakdown: plan.breakdown.then(|| Breakdown::new(true)),
        taking: true,
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut filled = 0;
    loop {
        if conn.taking {
            conn.start_calls();
        }
        if !conn.out.is_empty() {
            if conn.sock.write_all(&conn.out).is_err() {
                conn.fail_all(Outcome::TRANSPORT);
                break;
            }
            conn.out.clear();
        }
        if conn.calls.is_empty() && !conn.taking {
            break;
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match conn.sock.read(&mut buf[filled..]) {
            Ok(0) => {
                conn.fail_all(Outcome::TRANSPORT);
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                conn.fail_all(Outcome::CLIENT_TIMEOUT);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.fail_all(Outcome::TRANSPORT);
                break;
            }
        };
        filled += n;
        let mut at = 0;
        while let Some(frame) = wire::next_frame(&buf[..filled], at) {
            at = frame.end;
            if !conn.handle(&frame, &buf[frame.start..frame.end]) {
                conn.fail_all(Outcome::TRANSPORT);
                return Ok(conn.measured());
            }
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
    Ok(conn.measured())
}

impl Conn<'_> {
    fn measured(self) -> Measured {
        Measured {
            tally: self.tally,
            breakdown: self.breakdown,
        }
    }

    /// Starts calls until this connection's share is in flight, the flow
    /// window is short, or the phase takes no more.
    fn start_calls(&mut self) {
        while self.calls.len() < self.limit {
            if self.shared.stop.load(Ordering::Relaxed) {
                self.taking = false;
                return;
            }
            let n = self.shared.next.fetch_add(1, Ordering::Relaxed);
            if n >= self.plan.calls {
                self.taking = false;
                return;
            }
            let body = &self.plan.bodies[(n % self.plan.bodies.len() as u64) as usize];
            if self.send_window < body.len() as i64 {
                // Give the number back: another round takes it.
                self.shared.next.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            let stream = self.next_stream;
            self.next_stream += 2;
            let block = &self.plan.block;
            wire::header(
                &mut self.out,
                block.len(),
                wire::HEADERS,
                wire::END_HEADERS,
                stream,
            );
            self.out.extend_from_slice(block);
            wire::header(
                &mut self.out,
                body.len(),
                wire::DATA,
                wire::END_STREAM,
                stream,
            );
            self.out.extend_from_slice(body);
            self.send_window -= body.len() as i64;
            let mut call = self.spare.pop().unwrap_or_else(|| Call {
                began: Instant::now(),
                message: Vec::with_capacity(128),
                block: Vec::new(),
            });
            call.began = Instant::now();
            self.calls.insert(stream, call);
        }
    }

    /// Acts on one frame; false on a connection error.
    fn handle(&mut self, frame: &Frame, payload: &[u8]) -> bool {
        match frame.kind {
            wire::DATA => {
                self.unacked_recv += payload.len() as u32;
                if self.unacked_recv > wire::MAX_WINDOW / 2 {
                    wire::window_update(&mut self.out, 0, self.unacked_recv);
                    self.unacked_recv = 0;
                }
                let Some((s, e)) = wire::content(frame, payload) else {
                    return false;
                };
                if let Some(call) = self.calls.get_mut(&frame.stream) {
                    call.message.extend_from_slice(&payload[s..e]);
                    if frame.flags & wire::END_STREAM != 0 {
                        // A gRPC reply always ends with trailers.
                        self.finish(frame.stream, (Outcome::MALFORMED_REPLY, Figures::default()));
                    }
                }
            }
            wire::HEADERS | wire::CONTINUATION => {
                let Some((s, e)) = wire::content(frame, payload) else {
                    return false;
                };
                let end_stream = frame.flags & wire::END_STREAM != 0;
                if frame.kind == wire::HEADERS {
                    self.ended_with(frame.stream, end_stream);
                }
                let complete = frame.flags & wire::END_HEADERS != 0;
                return self.header_block(frame.stream, &payload[s..e], complete);
            }
            wire::RST_STREAM => self.finish(frame.stream, (Outcome::TRANSPORT, Figures::default())),
            wire::SETTINGS if frame.flags & wire::ACK == 0 => {
                for (id, value) in wire::settings(payload) {
                    if id == wire::SETTINGS_MAX_CONCURRENT_STREAMS {
                        self.limit = self.limit.min(value as usize);
                    }
                }
                wire::header(&mut self.out, 0, wire::SETTINGS, wire::ACK, 0);
            }
            wire::PING if frame.flags & wire::ACK == 0 => {
                wire::header(&mut self.out, payload.len(), wire::PING, wire::ACK, 0);
                self.out.extend_from_slice(payload);
            }
            wire::GOAWAY => return false,
            wire::WINDOW_UPDATE if frame.stream == 0 && payload.len() == 4 => {
                let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                self.send_window += i64::from(inc & wire::MAX_WINDOW);
            }
            _ => {}
        }
        true
    }

    /// Notes, on the call, whether its header block ends the stream (the
    /// trailers), kept in the block buffer's first byte until END_HEADERS.
    fn ended_with(&mut self, stream: u32, end_stream: bool) {
        if let Some(call) = self.calls.get_mut(&stream) {
            call.block.clear();
            call.block.push(u8::from(end_stream));
        }
    }

    /// Decodes a header block (every block, to keep HPACK's table in step)
    /// and ends the call on its trailers.
    fn header_block(&mut self, stream: u32, fragment: &[u8], complete: bool) -> bool {
        let (ends, block) = match self.calls.get_mut(&stream) {
            Some(call) => {
                call.block.extend_from_slice(fragment);
                if !complete {
                    return true;
                }
                (call.block[0] == 1, std::mem::take(&mut call.block))
            }
            // A stream already ended: decode for the table's sake.
            None => (false, [&[0u8][..], fragment].concat()),
        };
        let mut status: Option<HeaderMap> = None;
        let mut ok = false;
        let decoded = self.decoder.decode_with_cb(&block[1..], |name, value| {
            if &name[..] == b"grpc-status" && &value[..] == b"0" {
                ok = true;
            } else if name.starts_with(b"grpc-") {
                // A failure: keep what tonic reads a status from.
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(&name),
                    HeaderValue::from_bytes(&value),
                ) {
                    status.get_or_insert_with(HeaderMap::new).insert(n, v);
                }
            }
        });
        if decoded.is_err() {
            return false;
        }
        if let Some(call) = self.calls.get_mut(&stream) {
            call.block = block;
        }
        if !ends {
            return true;
        }
        let done = if ok {
            let message = self
                .calls
                .get(&stream)
                .map(|c| &c.message[..])
                .unwrap_or(&[]);
            reply_done(message, self.plan.breakdown)
        } else {
            match status.as_ref().and_then(tonic::Status::from_header_map) {
                Some(status) => (status_outcome(status), Figures::default()),
                None => (Outcome::MALFORMED_REPLY, Figures::default()),
            }
        };
        self.finish(stream, done);
        true
    }

    /// Records how call `stream` ended and frees its slot.
    fn finish(&mut self, stream: u32, (outcome, figures): (Outcome, Figures)) {
        let Some(mut call) = self.calls.remove(&stream) else {
            return;
        };
        let latency = call.began.elapsed();
        if let Some(b) = &mut self.breakdown {
            if outcome == Outcome::Ok {
                b.record(latency, figures);
            }
        }
        self.tally.record(latency, outcome);
        self.shared.done.fetch_add(1, Ordering::Relaxed);
        call.message.clear();
        self.spare.push(call);
    }

    /// Ends every call in flight with `outcome`.
    fn fail_all(&mut self, outcome: Outcome) {
        let streams: Vec<u32> = self.calls.keys().copied().collect();
        for stream in streams {
            self.finish(stream, (outcome.clone(), Figures::default()));
        }
        self.taking = false;
    }
}

/// The outcome of a reply whose trailers said `grpc-status: 0`: the
/// device's status in the `InvokeResponse`, with its figures when asked.
/// A message that is missing or does not decode is `MALFORMED_REPLY`:
/// never a success.
pub fn reply_done(message: &[u8], breakdown: bool) -> (Outcome, Figures) {
    let malformed = (Outcome::MALFORMED_REPLY, Figures::default());
    let Some(body) = message.get(5..) else {
        return malformed;
    };
    let len = u32::from_be_bytes([message[1], message[2], message[3], message[4]]) as usize;
    if message[0] != 0 || body.len() != len {
        return malformed;
    }
    let Ok(reply) = InvokeResponse::decode(Bytes::copy_from_slice(body)) else {
        return malformed;
    };
    let outcome = Outcome::from_device_status(reply.status);
    if !breakdown {
        return (outcome, Figures::default());
    }
    let std = |d: Option<prost_types::Duration>| d.and_then(|d| d.try_into().ok());
    let figures = Figures {
        gateway: std(reply.elapsed),
        device: std(reply.device_time),
    };
    (outcome, figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &InvokeResponse) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(msg.encoded_len() as u32).to_be_bytes());
        msg.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn only_a_whole_reply_with_a_2xx_status_is_ok() {
        let reply = |status| {
            framed(&InvokeResponse {
                status,
                ..Default::default()
            })
        };
        assert_eq!(reply_done(&reply(200), false).0, Outcome::Ok);
        assert_eq!(reply_done(&reply(503), false).0.name(), "DEVICE_STATUS_503");
        let whole = reply(200);
        assert_eq!(
            reply_done(&whole[..whole.len() - 1], false).0,
            Outcome::MALFORMED_REPLY
        );
        assert_eq!(reply_done(&[], false).0, Outcome::MALFORMED_REPLY);
        let mut compressed = whole.clone();
        compressed[0] = 1;
        assert_eq!(reply_done(&compressed, false).0, Outcome::MALFORMED_REPLY);
    }
}
