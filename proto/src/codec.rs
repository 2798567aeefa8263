//! The protobuf codec of the generated client and server: tonic-prost's
//! encoder with small starting buffers, and a decoder that says whose fault
//! an undecodable message is.
//!
//! Buffers: tonic starts every message's encode and decode buffer at 8 KiB.
//! thingcall's messages are a few hundred bytes, and a gateway with 10,000
//! calls in flight that finish together would hold 10,000 of those buffers
//! while HTTP/2 drains the replies: 80 MB for what needs 3. The buffers
//! still grow to fit a large payload; they just don't start large.
//!
//! Decode failures: tonic-prost answers every message prost refuses
//! (garbage, a truncated field, invalid UTF-8 in a `string`) with INTERNAL
//! and no ErrorInfo. A request that does not decode is the caller's bad
//! input, so the gateway answers it like any other: `INVALID_ARGUMENT` with
//! `google.rpc.ErrorInfo{reason: "INVALID_ARGUMENT"}`. A response that does
//! not decode is not the caller's fault and stays INTERNAL. The codec is
//! the one place that sees prost's error, and it does so without touching
//! the bytes again: decoding is the same single `Message::decode` over
//! tonic's buffer.

use std::collections::HashMap;
use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstEncoder};

use crate::v1;
use crate::Reason;

/// Starting size of each message's buffer: a typical call fits.
pub const BUFFER_SIZE: usize = 512;
/// Encoded bytes after which a streaming encoder yields (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with [`BUFFER_SIZE`] buffers and [`DecodeFailure`]'s
/// statuses; named in `build.rs` as the codec of every generated service
/// and client.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        SmallBufferCodec(PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + DecodeFailure + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// Decodes one message with prost, as tonic-prost does, and answers a
/// refusal with the status [`DecodeFailure`] gives the message's type.
#[derive(Debug)]
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + DecodeFailure> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(U::decode_failure)
    }

    fn buffer_settings(&self) -> BufferSettings {
        settings()
    }
}

/// What it means when a message of this type does not decode, by who sent
/// it: a request came from the caller, a response from the gateway.
pub trait DecodeFailure {
    /// The status of a failed decode. The default is tonic-prost's:
    /// INTERNAL, for a response (or anything else) the peer garbled.
    fn decode_failure(error: prost::DecodeError) -> Status {
        Status::internal(error.to_string())
    }
}

/// The status of a request that does not decode: the caller's bad input.
pub fn undecodable_request(message: &str, error: &prost::DecodeError) -> Status {
    Reason::InvalidArgument.status(
        format!("the request is not a valid {message}: {error}"),
        HashMap::new(),
    )
}

macro_rules! requests {
    ($($t:ident),* $(,)?) => {$(
        impl DecodeFailure for v1::$t {
            fn decode_failure(error: prost::DecodeError) -> Status {
                undecodable_request(concat!("thingcall.v1.", stringify!($t)), &error)
            }
        }
    )*};
}

macro_rules! responses {
    ($($t:ident),* $(,)?) => {$(impl DecodeFailure for v1::$t {})*};
}

// What the gateway decodes (each RPC's input) and what clients decode.
requests!(
    InvokeRequest,
    InvokeManyRequest,
    WatchDeviceRequest,
    GetDeviceRequest,
    ListDevicesRequest
);
responses!(
    InvokeResponse,
    InvokeManyEvent,
    DeviceEvent,
    Device,
    ListDevicesResponse
);

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::StatusExt;

    fn refusal() -> prost::DecodeError {
        // Field 1 (target) as a string of one byte, 0xFF: not UTF-8.
        v1::InvokeRequest::decode(&[0x0a, 0x01, 0xff][..]).unwrap_err()
    }

    #[test]
    fn an_undecodable_request_is_invalid_argument_with_error_info() {
        let s = v1::InvokeRequest::decode_failure(refusal());
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("thingcall.v1.InvokeRequest"), "{s:?}");
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INVALID_ARGUMENT");
        assert_eq!(info.domain, crate::reason::DOMAIN);
    }

    #[test]
    fn an_undecodable_response_stays_internal() {
        let s = v1::InvokeResponse::decode_failure(refusal());
        assert_eq!(s.code(), Code::Internal);
        assert!(s.get_details_error_info().is_none());
    }
}
