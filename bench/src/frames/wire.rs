//! The few HTTP/2 frames the cheap load path writes, built once, and a
//! parser of the frames it reads (RFC 9113 section 4.1: a 9-byte header of
//! length, type, flags and stream id, then the payload).

/// Frame types (RFC 9113 section 6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Frame flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// SETTINGS identifiers.
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// The largest flow-control window (2^31 - 1).
pub const MAX_WINDOW: u32 = 0x7fff_ffff;
/// Every window starts at this size (RFC 9113 section 6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Appends a frame header.
pub fn header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
}

/// The client's opening: the preface, SETTINGS (no push, the largest stream
/// window) and the connection window raised to the largest, so the server
/// never waits on this client's reads.
pub fn preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    header(&mut out, 12, SETTINGS, 0, 0);
    for (id, value) in [
        (SETTINGS_ENABLE_PUSH, 0),
        (SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW),
    ] {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
    window_update(&mut out, 0, MAX_WINDOW - DEFAULT_WINDOW);
    out
}

/// Appends a WINDOW_UPDATE of `increment` for `stream` (0: the connection).
pub fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    header(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

/// The header block of every Invoke request, HPACK-encoded without the
/// dynamic table or Huffman coding, so one block serves every stream:
/// `:method POST`, `:scheme http`, `:path`, `:authority`,
/// `content-type: application/grpc`, `te: trailers`.
pub fn request_block(path: &str, authority: &str) -> Vec<u8> {
    let mut out = vec![0x83, 0x86]; // static entries 3 and 6
    let literal = |out: &mut Vec<u8>, value: &str| {
        // Lengths below 127 fit the 7-bit prefix; longer ones use the
        // integer continuation of RFC 7541 section 5.1.
        integer(out, 0x00, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    };
    integer(&mut out, 0x00, 4, 4); // literal, not indexed, name :path
    literal(&mut out, path);
    integer(&mut out, 0x00, 4, 1); // :authority
    literal(&mut out, authority);
    integer(&mut out, 0x00, 4, 31); // content-type
    literal(&mut out, "application/grpc");
    out.push(0x00); // literal, not indexed, new name
    literal(&mut out, "te");
    literal(&mut out, "trailers");
    out
}

/// An HPACK integer with an `n`-bit prefix under the high bits `high`.
fn integer(out: &mut Vec<u8>, high: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128 + 128) as u8);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// One frame read off the connection: its header, and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream id (0: the connection).
    pub stream: u32,
    /// The payload's range in the buffer it was read from.
    pub start: usize,
    /// End of that range.
    pub end: usize,
}

/// The next whole frame of `buf[at..]`, or `None` until more is read.
pub fn next_frame(buf: &[u8], at: usize) -> Option<Frame> {
    let head = buf.get(at..at + 9)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let start = at + 9;
    let end = start + len;
    (buf.len() >= end).then(|| Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & MAX_WINDOW,
        start,
        end,
    })
}

/// The part of a DATA or HEADERS payload past its padding and priority
/// fields, or `None` when they do not fit (a protocol error).
pub fn content(frame: &Frame, payload: &[u8]) -> Option<(usize, usize)> {
    let mut start = 0;
    let mut end = payload.len();
    if frame.flags & PADDED != 0 {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    if frame.kind == HEADERS && frame.flags & PRIORITY != 0 {
        start += 5;
    }
    (start <= end).then_some((start, end))
}

/// The (id, value) pairs of a SETTINGS payload.
pub fn settings(payload: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    payload.chunks_exact(6).map(|c| {
        (
            u16::from_be_bytes([c[0], c[1]]),
            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_block_decodes_to_the_request_headers() {
        let block = request_block("/thingcall.v1.DeviceGateway/Invoke", "127.0.0.1:8080");
        let mut headers = Vec::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(&block, |n, v| {
                headers.push((
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                ))
            })
            .unwrap();
        let want = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/thingcall.v1.DeviceGateway/Invoke"),
            (":authority", "127.0.0.1:8080"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        let got: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want);
        // A path longer than the 7-bit prefix.
        let long = format!("/{}", "x".repeat(300));
        let block = request_block(&long, "h");
        let mut path = String::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(&block, |n, v| {
                if &n[..] == b":path" {
                    path = String::from_utf8(v.to_vec()).unwrap();
                }
            })
            .unwrap();
        assert_eq!(path, long);
    }

    #[test]
    fn frames_are_split_where_their_headers_say() {
        let mut buf = Vec::new();
        header(&mut buf, 3, DATA, END_STREAM, 5);
        buf.extend_from_slice(b"abc");
        window_update(&mut buf, 0, 7);
        let a = next_frame(&buf, 0).unwrap();
        assert_eq!((a.kind, a.flags, a.stream), (DATA, END_STREAM, 5));
        assert_eq!(&buf[a.start..a.end], b"abc");
        let b = next_frame(&buf, a.end).unwrap();
        assert_eq!(
            (b.kind, b.stream, &buf[b.start..b.end]),
            (WINDOW_UPDATE, 0, &7u32.to_be_bytes()[..])
        );
        assert_eq!(next_frame(&buf, b.end), None);
        assert_eq!(next_frame(&buf[..buf.len() - 1], a.end), None);
    }

    #[test]
    fn padding_and_priority_are_skipped() {
        let padded = Frame {
            kind: DATA,
            flags: PADDED,
            stream: 1,
            start: 0,
            end: 0,
        };
        assert_eq!(content(&padded, &[2, b'h', b'i', 0, 0]), Some((1, 3)));
        assert_eq!(content(&padded, &[9, 0]), None);
        let prio = Frame {
            kind: HEADERS,
            flags: PRIORITY,
            stream: 1,
            start: 0,
            end: 0,
        };
        assert_eq!(content(&prio, &[0, 0, 0, 0, 0, 0x88]), Some((5, 6)));
    }

    #[test]
    fn the_preface_opens_the_largest_windows() {
        let p = preface();
        assert!(p.starts_with(b"PRI * HTTP/2.0"));
        let s = next_frame(&p, 24).unwrap();
        assert_eq!(s.kind, SETTINGS);
        let got: Vec<_> = settings(&p[s.start..s.end]).collect();
        assert_eq!(got, [(2, 0), (4, MAX_WINDOW)]);
        let w = next_frame(&p, s.end).unwrap();
        assert_eq!(w.kind, WINDOW_UPDATE);
    }
}
