//! Body of the `membership_datagram` fuzz target (`fuzz/`): a datagram arriving on the
//! membership socket, before and after authentication. The fuzz target calls it, and the test
//! below replays every seed and crash reproducer of `fuzz/seeds/membership_datagram/` through
//! it on stable Rust, so a regression fails `cargo test`.
//!
//! Not for production code paths: the panics are the point.

use crate::membership::{GossipTimers, NodeId, foca_config};
use ferrolb_speaker_core::membership::auth::{Authenticator, Channel};
use ferrolb_speaker_core::membership::heartbeat::{HeartbeatTimers, Message, Outbox, Watchdog};
use foca::{AccumulatingRuntime, Foca, PostcardCodec};
use rand_foca::SeedableRng;
use rand_foca::rngs::StdRng;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

/// The cluster key of the harness.
const KEY: &[u8] = b"ferrolb fuzz membership key";
/// The harness speaker's name and gossip address, and the sender of every datagram.
const ME: &str = "node-a";
const PEER: &str = "node-b";
const MY_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 200, 0, 1)), 7946);
const PEER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 200, 0, 2)), 7946);

/// The first byte of `data` selects what the rest is: with bit 0 clear, a raw datagram from
/// anyone (the authentication check is all it meets); with bit 0 set, the payload of a
/// datagram sealed with the cluster key — bit 1 clear for the gossip channel (handed to foca
/// as the membership worker does), set for the heartbeat channel (decoded and handed to the
/// watchdog). Invariants: no panic; only a datagram carrying the key's own tag opens, one
/// sealed with another key does not; what is sealed opens to itself on its channel;
/// a heartbeat message that decodes re-encodes to the same bytes.
pub fn membership_datagram(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(auth) = Authenticator::new(KEY) else {
        panic!("the harness key is not empty");
    };
    let sealed = mode & 1 == 1;
    let datagram = if sealed {
        let channel = if mode & 2 == 0 {
            Channel::Gossip
        } else {
            Channel::Heartbeat
        };
        let datagram = auth.seal_on(channel, rest);
        assert_eq!(auth.open_any(&datagram), Ok((channel, rest)));
        datagram
    } else {
        if let Some(stranger) = Authenticator::new(b"another cluster's key") {
            assert!(auth.open_any(&stranger.seal(rest)).is_err());
        }
        rest.to_vec()
    };
    match auth.open_any(&datagram) {
        Err(_) => assert!(!sealed, "a sealed datagram must open"),
        Ok((channel, payload)) => {
            // Only the key's own tag opens: what opened is exactly what sealing gives.
            assert_eq!(auth.seal_on(channel, payload), datagram);
            match channel {
                Channel::Gossip => gossip(payload),
                Channel::Heartbeat => heartbeat(payload),
            }
        }
    }
}

/// An authenticated gossip payload, handed to a fresh foca member as the worker does.
fn gossip(payload: &[u8]) {
    let identity = NodeId {
        node: ME.to_string(),
        addr: MY_ADDR,
        bump: 1,
    };
    let Ok(config) = foca_config(&GossipTimers::default()) else {
        panic!("the default gossip timers are valid");
    };
    let mut foca = Foca::new(identity, config, StdRng::seed_from_u64(1), PostcardCodec);
    let mut runtime = AccumulatingRuntime::new();
    let _ = foca.handle_data(payload, &mut runtime);
    while runtime.to_send().is_some() {}
    while runtime.to_schedule().is_some() {}
    while runtime.to_notify().is_some() {}
    // One datagram adds at most the members it names, each at least a few bytes long.
    assert!(foca.num_members() <= payload.len());
}

/// An authenticated heartbeat payload from a member, decoded and handed to a watchdog that
/// watches the sender.
fn heartbeat(payload: &[u8]) {
    let Ok(message) = Message::decode(payload) else {
        return;
    };
    assert_eq!(message.encode(), payload);
    let now = Instant::now();
    let mut watchdog = Watchdog::new(ME, 1, HeartbeatTimers::default());
    let mut out = Outbox::new();
    watchdog.set_watched(
        BTreeMap::from([(PEER.to_string(), PEER_ADDR)]),
        now,
        &mut out,
    );
    let _ = watchdog.on_message(PEER_ADDR, message, now, &mut out);
    let _ = watchdog.next_deadline();
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Every file of `fuzz/seeds/membership_datagram/` runs through the body without a panic.
    #[test]
    fn membership_datagram_seeds_replay() {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/membership_datagram");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("seed directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no seeds", dir.display());
        for path in files {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| super::membership_datagram(&bytes));
            assert!(outcome.is_ok(), "seed {} fails", path.display());
        }
    }

    /// The sealed seeds carry the harness key's tag and real foca and heartbeat payloads.
    #[test]
    fn membership_seeds_open_and_decode() {
        use super::*;
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/membership_datagram");
        let seed = |name: &str| std::fs::read(dir.join(name)).expect("seed");
        let auth = Authenticator::new(KEY).expect("key");
        let beat = seed("raw-sealed-heartbeat-beat");
        let (channel, payload) = auth.open_any(&beat[1..]).expect("sealed with the key");
        assert_eq!(channel, Channel::Heartbeat);
        assert_eq!(
            Message::decode(payload),
            Ok(Message::Beat(PEER.to_string(), 7))
        );
        assert!(auth.open_any(&seed("raw-bad-tag")[1..]).is_err());
        let announce = seed("gossip-announce-0");
        let identity = NodeId {
            node: ME.to_string(),
            addr: MY_ADDR,
            bump: 1,
        };
        let config = foca_config(&GossipTimers::default()).expect("timers");
        let mut foca = Foca::new(identity, config, StdRng::seed_from_u64(1), PostcardCodec);
        let mut runtime = AccumulatingRuntime::new();
        foca.handle_data(&announce[1..], &mut runtime)
            .expect("the announce seed is a valid foca message");
        assert_eq!(foca.num_members(), 1);
    }
}
