//! Loopback ports for servers the tests start.
//!
//! Binding port 0 and releasing it (envtest's trick) hands out a port from the kernel's *ephemeral*
//! range, which every outgoing connection on the machine also draws from: between the release and the
//! child's `bind` a client socket can take it, and the server dies with "Address already in use" (seen
//! in CI: PostgreSQL on 33953). Ports here come from below that range, where the kernel never assigns
//! client ports, spread by process ID so concurrent test binaries start far apart, and handed out once
//! per process; the bind check skips anything another program is listening on.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// First port handed out; below it are well-known services.
const LOW: u32 = 15_000;
/// One past the last port; Linux's default ephemeral range starts at 32768.
const HIGH: u32 = 32_768;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A loopback TCP port nothing is listening on, never returned twice by this process.
pub fn free_port() -> std::io::Result<u16> {
    let span = HIGH - LOW;
    // Start each process at a different place so two test binaries rarely probe the same ports.
    let start = (std::process::id().wrapping_mul(7919)) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % span) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free loopback port in {LOW}..{HIGH}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().expect("a free port")).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert!((LOW..HIGH).contains(&u32::from(p)), "{p}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("handed-out port binds");
        }
    }

    #[test]
    fn a_listening_port_is_skipped() {
        let p = free_port().expect("a free port");
        let _held = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("bind");
        for _ in 0..20 {
            assert_ne!(free_port().expect("a free port"), p);
        }
    }
}
