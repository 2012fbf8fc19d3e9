//! Ports for servers under test and under benchmark.
//!
//! Ports the kernel hands out for `:0` and for outgoing connections come
//! from its ephemeral range (32768 and up by default), so a port found free
//! that way can be taken by some client's connection between the check and
//! the server's bind. These come from below that range, distinct per call
//! in this process and offset by its pid.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that nothing listens on now, between 20000 and
/// 31999.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (std::process::id().wrapping_mul(97).wrapping_add(n) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 31999 on 127.0.0.1")
}

/// Waits until something accepts connections on `port` of 127.0.0.1;
/// panics, naming `what`, if nothing does `within`.
pub(crate) fn wait_listening(what: &str, port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
