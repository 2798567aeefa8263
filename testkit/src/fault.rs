//! A TCP fault proxy for link tests: it sits between a client and a server
//! and does to the bytes of every connection what a bad network does, in
//! each direction on its own, switchable while connections are open:
//! pass them, add latency, throttle them, drop them (blackhole), stop
//! reading them (stall), or cut the connection with a FIN or an RST.
//!
//! Blackhole and stall never close a connection: that is a half-open link,
//! which only a keep-alive can notice. [`FaultProxy::counts`] reports what
//! was forwarded and dropped, so a test waits for "the proxy swallowed my
//! bytes" as an event instead of sleeping.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with the bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as they come.
    Pass,
    /// Forward each chunk read after this added latency (a long route).
    /// Chunks are delayed one after the other, so a busy link also slows.
    Delay(Duration),
    /// Forward at most this many bytes per second (a thin link).
    Throttle(u64),
    /// Read and drop: the sender's buffers stay empty, nothing arrives (a
    /// link that lost its route). The connection stays open.
    Blackhole,
    /// Stop reading: the sender's buffers fill, so its writes block (a link
    /// that went silent under load). The connection stays open.
    Stall,
    /// Close this direction with a FIN: the receiver reads end of stream
    /// (half-close; set both directions for an orderly close). Bytes the
    /// sender writes afterwards are not read.
    CutFin,
    /// Reset the whole connection (RST, by closing with `SO_LINGER` 0),
    /// whichever direction it is set on: both peers see a reset.
    /// Connections accepted meanwhile are reset at once.
    CutRst,
}

/// One direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client that connected to the proxy, to the upstream server.
    ToServer,
    /// From the upstream server back to the client.
    ToClient,
}

/// The fault of each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Faults {
    to_server: Fault,
    to_client: Fault,
}

impl Faults {
    fn of(&self, d: Direction) -> Fault {
        match d {
            Direction::ToServer => self.to_server,
            Direction::ToClient => self.to_client,
        }
    }

    fn reset(&self) -> bool {
        self.to_server == Fault::CutRst || self.to_client == Fault::CutRst
    }
}

/// Bytes one direction moved, over all connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Bytes written on to the receiver.
    pub forwarded: u64,
    /// Bytes read and thrown away (blackhole, or read just before a cut).
    pub dropped: u64,
}

/// What the proxy did since it started, followed through
/// [`FaultProxy::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Client connections accepted.
    pub accepted: u64,
    /// Connections the proxy reset ([`Fault::CutRst`]).
    pub reset: u64,
    /// Client to server.
    pub to_server: Flow,
    /// Server to client.
    pub to_client: Flow,
}

impl Counts {
    /// The flow of direction `d`.
    pub fn flow(&self, d: Direction) -> Flow {
        match d {
            Direction::ToServer => self.to_server,
            Direction::ToClient => self.to_client,
        }
    }

    fn flow_mut(&mut self, d: Direction) -> &mut Flow {
        match d {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

/// A running proxy; dropping it stops accepting (open connections end
/// with the test's runtime).
pub struct FaultProxy {
    addr: SocketAddr,
    faults: watch::Sender<Faults>,
    counts: watch::Sender<Counts>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port to `upstream`, passing bytes.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (faults, rx) = watch::channel(Faults {
            to_server: Fault::Pass,
            to_client: Fault::Pass,
        });
        let counts = watch::Sender::new(Counts::default());
        let tally = counts.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tally.send_modify(|c| c.accepted += 1);
                tokio::spawn(proxy(client, upstream, rx.clone(), tally.clone()));
            }
        });
        FaultProxy {
            addr,
            faults,
            counts,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches both directions of every connection, open and new, to `fault`.
    pub fn set(&self, fault: Fault) {
        self.faults.send_replace(Faults {
            to_server: fault,
            to_client: fault,
        });
    }

    /// Switches one direction of every connection, open and new, to
    /// `fault`; the other keeps its own.
    pub fn set_direction(&self, direction: Direction, fault: Fault) {
        self.faults.send_modify(|f| match direction {
            Direction::ToServer => f.to_server = fault,
            Direction::ToClient => f.to_client = fault,
        });
    }

    /// What the proxy has done, to wait on (`wait_for`) rather than sleep.
    pub fn counts(&self) -> watch::Receiver<Counts> {
        self.counts.subscribe()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Why a pump stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its sender closed, its receiver went away, or it was cut with a FIN.
    Closed,
    /// The connection is to be reset.
    Reset,
}

/// Proxies one client connection to `upstream` until both directions end.
async fn proxy(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: watch::Receiver<Faults>,
    counts: watch::Sender<Counts>,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let (up, down) = tokio::join!(
        pump(cr, sw, Direction::ToServer, faults.clone(), &counts),
        pump(sr, cw, Direction::ToClient, faults, &counts),
    );
    if up == End::Reset || down == End::Reset {
        // Closing with a zero linger sends an RST instead of a FIN.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
        counts.send_modify(|c| c.reset += 1);
    }
}

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;

/// Copies `from` to `to` as the fault of `dir` says, until either side
/// closes or the fault cuts the connection.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    dir: Direction,
    mut faults: watch::Receiver<Faults>,
    counts: &watch::Sender<Counts>,
) -> End {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let now = *faults.borrow_and_update();
        if now.reset() {
            return End::Reset;
        }
        let limit = match now.of(dir) {
            Fault::Stall => {
                // Read nothing until the fault changes.
                if faults.changed().await.is_err() {
                    return End::Closed;
                }
                continue;
            }
            Fault::CutFin => {
                let _ = to.shutdown().await;
                return End::Closed;
            }
            // About ten chunks a second, so the rate is smooth.
            Fault::Throttle(rate) => (rate / 10).clamp(1, CHUNK as u64) as usize,
            _ => CHUNK,
        };
        let n = tokio::select! {
            r = from.read(&mut buf[..limit]) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            changed = faults.changed() => {
                if changed.is_err() {
                    return End::Closed;
                }
                continue;
            }
        };
        // The fault when the bytes arrived decides their fate.
        let mut pace = None;
        let fault = faults.borrow().of(dir);
        match fault {
            Fault::Pass | Fault::Stall => {}
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Throttle(rate) => {
                pace = Some(Duration::from_secs_f64(n as f64 / rate.max(1) as f64));
            }
            Fault::Blackhole | Fault::CutFin | Fault::CutRst => {
                counts.send_modify(|c| c.flow_mut(dir).dropped += n as u64);
                continue;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        counts.send_modify(|c| c.flow_mut(dir).forwarded += n as u64);
        if let Some(pace) = pace {
            // Throttled: the next chunk waits its share of the second.
            tokio::time::sleep(pace).await;
        }
    }
    let _ = to.shutdown().await;
    End::Closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::sync::mpsc;

    /// A TCP echo server; every chunk it receives is also reported.
    async fn echo() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        let _ = tx.send(buf[..n].to_vec());
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    async fn setup() -> (FaultProxy, TcpStream, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (addr, seen) = echo().await;
        let proxy = FaultProxy::start(addr).await;
        let s = TcpStream::connect(proxy.addr()).await.unwrap();
        (proxy, s, seen)
    }

    async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }

    async fn dropped(proxy: &FaultProxy, dir: Direction, at_least: u64) {
        proxy
            .counts()
            .wait_for(|c| c.flow(dir).dropped >= at_least)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn passes_both_ways() {
        let (_proxy, mut s, _) = setup().await;
        round_trip(&mut s, b"hello").await;
    }

    #[tokio::test]
    async fn delay_adds_latency_each_way() {
        let (proxy, mut s, _) = setup().await;
        let d = Duration::from_millis(150);
        proxy.set(Fault::Delay(d));
        let started = Instant::now();
        round_trip(&mut s, b"slow").await;
        assert!(started.elapsed() >= 2 * d, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn throttle_caps_the_rate() {
        let (proxy, mut s, _) = setup().await;
        let rate = 20_000;
        proxy.set_direction(Direction::ToServer, Fault::Throttle(rate));
        let msg = vec![7u8; 10_000];
        let started = Instant::now();
        round_trip(&mut s, &msg).await;
        // All but the first chunk (a tenth of the rate) waited its turn.
        let least = Duration::from_secs_f64((msg.len() as u64 - rate / 10) as f64 / rate as f64);
        assert!(started.elapsed() >= least, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn blackhole_drops_without_closing() {
        let (proxy, mut s, mut seen) = setup().await;
        proxy.set(Fault::Blackhole);
        s.write_all(b"lost").await.unwrap();
        dropped(&proxy, Direction::ToServer, 4).await;
        proxy.set(Fault::Pass);
        // Still open, and the dropped bytes never arrive.
        round_trip(&mut s, b"found").await;
        assert_eq!(seen.recv().await.unwrap(), b"found");
    }

    #[tokio::test]
    async fn blackhole_one_way_drops_only_that_way() {
        let (proxy, mut s, mut seen) = setup().await;
        proxy.set_direction(Direction::ToClient, Fault::Blackhole);
        s.write_all(b"echo me").await.unwrap();
        // The server got it; its echo is swallowed on the way back.
        assert_eq!(seen.recv().await.unwrap(), b"echo me");
        dropped(&proxy, Direction::ToClient, 7).await;
        proxy.set(Fault::Pass);
        round_trip(&mut s, b"again").await;
    }

    #[tokio::test]
    async fn stall_fills_the_senders_buffers_then_resumes() {
        let (proxy, s, _) = setup().await;
        proxy.set_direction(Direction::ToServer, Fault::Stall);
        // Write until the kernel refuses more: nobody reads on the way.
        let block = vec![1u8; 64 * 1024];
        let mut sent = 0usize;
        loop {
            s.writable().await.unwrap();
            match s.try_write(&block) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(proxy.counts().borrow().to_server.forwarded, 0);
        proxy.set(Fault::Pass);
        // Everything stuck arrives, echoed back.
        let (mut r, _w) = s.into_split();
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while got < sent {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {got} of {sent}");
            got += n;
        }
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn cut_with_fin_ends_the_stream() {
        let (proxy, mut s, _) = setup().await;
        round_trip(&mut s, b"up").await;
        proxy.set(Fault::CutFin);
        let mut buf = [0u8; 8];
        assert_eq!(s.read(&mut buf).await.unwrap(), 0, "end of stream");
    }

    #[tokio::test]
    async fn cut_with_rst_resets_the_connection() {
        let (proxy, mut s, _) = setup().await;
        round_trip(&mut s, b"up").await;
        proxy.set_direction(Direction::ToClient, Fault::CutRst);
        let mut buf = [0u8; 8];
        let e = s.read(&mut buf).await.expect_err("a reset, not an end");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(proxy.counts().borrow().reset, 1);
    }
}
