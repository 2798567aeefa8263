//! gRPC framing checks in front of the DeviceGateway service, so a request
//! tonic cannot read gets `INVALID_ARGUMENT` with ErrorInfo like any other
//! bad input instead of tonic's INTERNAL ("Unexpected EOF decoding stream.",
//! "Missing request message.") or OUT_OF_RANGE without details.
//!
//! Why a body wrapper: tonic reads the frames itself before the codec sees a
//! message, so the codec (which answers messages prost refuses, see
//! `thingcall_proto::codec`) never learns of a frame cut short. tonic does
//! pass on a body error that is a [`Status`] untouched, so the wrapper
//! watches the frame headers go by and, when the body ends mid-frame or
//! declares too much, ends it with the gateway's own status. It sits under
//! tonic-web, so gRPC (h2c) and gRPC-web (after tonic-web's decoding) pass
//! the same checks. The cost is a look at each chunk's bytes, no copy and
//! no buffering: the chunks pass through unchanged.
//!
//! Every DeviceGateway RPC takes exactly one request message (none is
//! client-streaming), so the wrapper also refuses a body with none or more
//! than one.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use tonic::server::NamedService;
use tonic::{Code, Status};

use crate::error::Error;

/// gRPC's length-prefix: one flag byte and a big-endian `u32` length.
const HEADER: usize = 5;

/// Room in a request message for everything but the payload; validation
/// bounds those fields (ids, metadata, content type, key) far below this.
const FIELDS_HEADROOM: usize = 1024 * 1024;

/// The largest request message the gateway reads: `max_payload` plus room
/// for the other fields. tonic is told the same limit; the wrapper refuses a
/// longer message from its header, before reading it.
pub fn max_message(max_payload: usize) -> usize {
    max_payload.saturating_add(FIELDS_HEADROOM)
}

/// A service (the DeviceGateway server) whose request bodies are checked
/// frame by frame; see the module docs.
#[derive(Debug, Clone)]
pub struct CheckFrames<S> {
    inner: S,
    max_payload: usize,
}

impl<S> CheckFrames<S> {
    /// Checks the requests of `inner`, refusing a message over
    /// [`max_message`]`(max_payload)` as `PAYLOAD_TOO_LARGE`.
    pub fn new(inner: S, max_payload: usize) -> Self {
        Self { inner, max_payload }
    }
}

impl<S: NamedService> NamedService for CheckFrames<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for CheckFrames<S>
where
    S: tower::Service<http::Request<Framed<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let max_payload = self.max_payload;
        let encoded = names_encoding(req.headers());
        self.inner
            .call(req.map(|body| Framed::new(body, max_payload, encoded)))
    }
}

/// Whether a request with `headers` names a message encoding (compression)
/// other than `identity`: without one, a message marked compressed is bad
/// input.
pub(crate) fn names_encoding(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes() != b"identity")
}

/// A request body that follows the gRPC frames through it; see the module
/// docs.
#[derive(Debug)]
pub struct Framed<B> {
    inner: B,
    max_payload: usize,
    /// The request names a `grpc-encoding`: a compressed message is tonic's
    /// to judge.
    encoded: bool,
    /// The frame header read so far, and how much of it.
    header: [u8; HEADER],
    have: usize,
    /// Message bytes still to come for the current frame.
    left: usize,
    /// Frame headers seen.
    messages: usize,
    /// Ended (with an error, or checked at its end): nothing more to read.
    done: bool,
}

impl<B> Framed<B> {
    pub(crate) fn new(inner: B, max_payload: usize, encoded: bool) -> Self {
        Self {
            inner,
            max_payload,
            encoded,
            header: [0; HEADER],
            have: 0,
            left: 0,
            messages: 0,
            done: false,
        }
    }

    /// Follows `data` through the frames.
    fn follow(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            if self.left > 0 {
                let n = self.left.min(data.len());
                self.left -= n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == HEADER {
                self.have = 0;
                self.start_message()?;
            }
        }
        Ok(())
    }

    /// A whole frame header has arrived.
    fn start_message(&mut self) -> Result<(), Error> {
        self.messages += 1;
        if self.messages > 1 {
            return Err(Error::invalid(
                "the request carries more than one message; every DeviceGateway call takes one",
            ));
        }
        let [flag, len @ ..] = self.header;
        if flag > 1 {
            return Err(Error::invalid(format!(
                "gRPC frame flag {flag} is neither 0 (plain) nor 1 (compressed)"
            )));
        }
        // With an encoding named, flag 1 is tonic's to judge (it knows
        // which it supports); without one, the message cannot be read.
        if flag == 1 && !self.encoded {
            return Err(Error::invalid(
                "the request's message is marked compressed, but the request names no grpc-encoding",
            ));
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > max_message(self.max_payload) {
            return Err(Error::PayloadTooLarge {
                size: len,
                limit: self.max_payload,
            });
        }
        self.left = len;
        Ok(())
    }

    /// The body ended (or its trailers came): the message must be whole.
    fn finish(&self) -> Result<(), Error> {
        if self.have > 0 || self.left > 0 {
            return Err(Error::invalid(format!(
                "the request ends inside a gRPC frame ({} bytes missing)",
                if self.have > 0 {
                    HEADER - self.have
                } else {
                    self.left
                }
            )));
        }
        if self.messages == 0 {
            return Err(Error::invalid("the request carries no message"));
        }
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(Status::from(e))))
    }
}

impl<B> Body for Framed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                let checked = match frame.data_ref() {
                    Some(data) => this.follow(data.chunk()),
                    None => this.finish(),
                };
                match checked {
                    Ok(()) => Poll::Ready(Some(Ok(frame))),
                    Err(e) => this.fail(e),
                }
            }
            Some(Err(e)) => {
                let status = Status::from_error(e.into());
                // A caller that went away: tonic ends the request quietly.
                if status.code() == Code::Cancelled {
                    this.done = true;
                    return Poll::Ready(Some(Err(status)));
                }
                // Everything else that stops a body being read (tonic-web's
                // bad base64, a protocol error) is the request's fault.
                let msg = format!("the request body could not be read: {}", status.message());
                this.fail(Error::invalid(msg))
            }
            None => match this.finish() {
                Ok(()) => {
                    this.done = true;
                    Poll::Ready(None)
                }
                Err(e) => this.fail(e),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not the inner body's: the end is where the checks run.
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingcall_proto::Reason;

    fn frame(flag: u8, len: u32) -> Vec<u8> {
        let mut f = vec![flag];
        f.extend_from_slice(&len.to_be_bytes());
        f
    }

    fn framed() -> Framed<()> {
        Framed::new((), 100, false)
    }

    #[test]
    fn a_whole_message_in_any_chunks_passes() {
        let mut msg = frame(0, 3);
        msg.extend_from_slice(b"abc");
        for split in 0..=msg.len() {
            let mut f = framed();
            f.follow(&msg[..split]).unwrap();
            f.follow(&msg[split..]).unwrap();
            f.finish().unwrap();
        }
        let mut f = framed();
        f.follow(&frame(0, 0)).unwrap();
        f.finish().unwrap();
    }

    #[test]
    fn bad_framing_is_invalid_argument() {
        let reason = |r: Result<(), Error>| r.unwrap_err().reason();
        // No message, a cut header, a cut message.
        assert_eq!(reason(framed().finish()), Reason::InvalidArgument);
        let mut f = framed();
        f.follow(&[0, 0]).unwrap();
        assert_eq!(reason(f.finish()), Reason::InvalidArgument);
        let mut f = framed();
        f.follow(&frame(0, 10)).unwrap();
        f.follow(b"abc").unwrap();
        assert_eq!(reason(f.finish()), Reason::InvalidArgument);
        // A bad flag, a compressed message with no encoding named, two
        // messages, one too long.
        assert_eq!(
            reason(framed().follow(&frame(2, 0))),
            Reason::InvalidArgument
        );
        assert_eq!(
            reason(framed().follow(&frame(1, 0))),
            Reason::InvalidArgument
        );
        Framed::new((), 100, true).follow(&frame(1, 0)).unwrap();
        let mut two = frame(0, 0);
        two.extend(frame(0, 0));
        assert_eq!(reason(framed().follow(&two)), Reason::InvalidArgument);
        let long = max_message(100) as u32 + 1;
        assert_eq!(
            reason(framed().follow(&frame(0, long))),
            Reason::PayloadTooLarge
        );
    }
}
