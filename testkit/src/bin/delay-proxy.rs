#![forbid(unsafe_code)]
//! `delay-proxy LISTEN UPSTREAM ONE_WAY_US`: a TCP relay that holds every
//! chunk of bytes for a fixed time in each direction, so loopback behaves
//! like a link with a round trip of twice that.
//!
//! The benchmark uses it to put a real network distance between callers and
//! the broker: connection setup costs round trips, and on plain loopback a
//! round trip costs almost nothing. This sandbox has no `tc netem` (its
//! kernel lacks the qdisc), hence a relay.
//!
//! A new connection costs one round trip before its first byte moves, as
//! TCP's handshake does on a real link (on loopback the caller's `connect`
//! returns at once): the relay reads nothing from it for twice the one-way
//! delay. Without that, a connection-per-request caller would be charged
//! one round trip too few.
//!
//! Threads and `std::thread::sleep` rather than tokio: tokio's timer has
//! millisecond granularity, and the delays wanted are a fraction of that.
//! Order is kept because each direction has one writer draining a FIFO; a
//! chunk is written at its arrival time plus the delay, like a wire with
//! latency and no bandwidth limit.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, delay_us] = args.as_slice() else {
        eprintln!("usage: delay-proxy LISTEN_ADDR UPSTREAM_ADDR ONE_WAY_DELAY_US");
        std::process::exit(64);
    };
    let delay = Duration::from_micros(delay_us.parse().unwrap_or_else(|_| {
        eprintln!("delay-proxy: ONE_WAY_DELAY_US must be a whole number");
        std::process::exit(64);
    }));
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("delay-proxy: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        // Its own thread, so one connection's handshake delay does not hold
        // the next one's accept.
        std::thread::spawn(move || {
            std::thread::sleep(2 * delay);
            match TcpStream::connect(&upstream) {
                Ok(server) => relay(client, server, delay),
                Err(e) => eprintln!("delay-proxy: cannot reach {upstream}: {e}"),
            }
        });
    }
}

/// Starts both directions of one connection.
fn relay(client: TcpStream, server: TcpStream, delay: Duration) {
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
    }
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for (from, to) in pairs {
        if let (Ok(from), Ok(to)) = (from, to) {
            direction(from, to, delay);
        }
    }
}

/// One direction: a reader stamps chunks, a writer releases them on time.
fn direction(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer once it has flushed what it holds.
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
