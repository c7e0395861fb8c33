//! The cost of the membership's second channel (`ferrolb_speaker_core::membership::heartbeat`),
//! computed from its encoding and timers rather than simulated: its traffic is a fixed rate
//! per (owner, successor) pair and per member, with no randomness to measure.
//!
//! - Beats: an owner sends [`Message::Beat`] every `interval` to each successor subscribed to
//!   it; a successor repeats [`Message::Watch`] every `subscribe_period`. Only owners of layer 2
//!   addresses and their successors take part, at most one pair per other speaker.
//! - Links reports: every speaker sends its [`Message::Links`] report to every member every
//!   [`LINKS_REFRESH`] (and on change), whatever the addresses.

use super::sim::{IPV4_UDP_HEADERS, node_name};
use ferrolb_speaker_core::layer2::carrier::LinkReport;
use ferrolb_speaker_core::membership::auth;
use ferrolb_speaker_core::membership::heartbeat::{
    HeartbeatTimers, LINKS_REFRESH, LinksReport, Message,
};
use std::time::Duration;

/// Traffic of one node in one role.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rate {
    /// How many owners (or successors) the node pairs with.
    pub pairs: usize,
    /// Datagrams received per second.
    pub received_per_s: f64,
    /// UDP payload bytes received per second.
    pub received_bytes_s: f64,
    /// Datagrams sent per second.
    pub sent_per_s: f64,
    /// UDP payload bytes sent per second.
    pub sent_bytes_s: f64,
}

/// The heartbeat channel's cost at a cluster size.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HeartbeatCost {
    /// Cluster size the figures are for.
    pub members: usize,
    /// Beat datagram size (envelope included), bytes.
    pub beat_bytes: usize,
    /// Watch datagram size (envelope included), bytes.
    pub watch_bytes: usize,
    /// Beats per second per pair.
    pub beats_per_s: f64,
    /// A node that is successor to k owners.
    pub successor: Vec<Rate>,
    /// Links report size with one interface (envelope included), bytes.
    pub links_bytes: usize,
    /// Links reports each member sends (and receives) per second.
    pub links_per_s: f64,
}

impl HeartbeatCost {
    /// The cost with the speaker's default timers for `members` speakers, each with one
    /// interface, for nodes that are successor to each of `ks` owners (capped at members − 1).
    pub fn new(members: usize, ks: &[usize]) -> Self {
        let timers = HeartbeatTimers::default();
        let name = node_name(members.saturating_sub(1));
        let boot = 1_796_000_000_000;
        let beat_bytes = auth::OVERHEAD + Message::Beat(name.clone(), boot).encode().len();
        let watch_bytes = auth::OVERHEAD + Message::Watch(name.clone()).encode().len();
        let links_bytes = auth::OVERHEAD
            + Message::Links(LinksReport {
                node: name,
                boot,
                seq: 1,
                links: vec![LinkReport {
                    name: "eth0".to_string(),
                    carrier: true,
                    automatic: true,
                }],
            })
            .encode()
            .len();
        let per_s = |period: Duration| 1.0 / period.as_secs_f64();
        let beats_per_s = per_s(timers.interval);
        let watches_per_s = per_s(timers.subscribe_period);
        let mut ks: Vec<usize> = ks
            .iter()
            .map(|&k| k.min(members.saturating_sub(1)))
            .collect();
        ks.dedup();
        let successor = ks
            .into_iter()
            .map(|k| {
                let pairs = k as f64;
                Rate {
                    pairs: k,
                    received_per_s: pairs * beats_per_s,
                    received_bytes_s: pairs * beats_per_s * beat_bytes as f64,
                    sent_per_s: pairs * watches_per_s,
                    sent_bytes_s: pairs * watches_per_s * watch_bytes as f64,
                }
            })
            .collect();
        HeartbeatCost {
            members,
            beat_bytes,
            watch_bytes,
            beats_per_s,
            successor,
            links_bytes,
            links_per_s: members.saturating_sub(1) as f64 * per_s(LINKS_REFRESH),
        }
    }

    /// Links reports' bytes per second per member, each way (UDP payload).
    pub fn links_bytes_s(&self) -> f64 {
        self.links_per_s * self.links_bytes as f64
    }
}

impl std::fmt::Display for HeartbeatCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "heartbeat channel at {} members (computed from heartbeat.rs's encoding and default timers; \
             UDP payload incl. the 36-byte envelope, +{IPV4_UDP_HEADERS} B/datagram for IPv4+UDP headers):",
            self.members
        )?;
        writeln!(
            f,
            "  beat {} B x {:.0}/s owner->successor per pair; watch {} B x 2/s successor->owner",
            self.beat_bytes, self.beats_per_s, self.watch_bytes
        )?;
        for r in &self.successor {
            writeln!(
                f,
                "  successor to k={:>3} owners: receives {:>7.0} beats/s = {:>9.1} KB/s, sends {:>5.0} watches/s = {:>6.1} KB/s \
                 (an owner with k successors sends the same beats)",
                r.pairs,
                r.received_per_s,
                r.received_bytes_s / 1e3,
                r.sent_per_s,
                r.sent_bytes_s / 1e3
            )?;
        }
        write!(
            f,
            "  links reports: every member sends its report ({} B, one interface) to every other member every {} s: \
             {:.0} datagrams/s = {:.1} KB/s sent and as much received, per member",
            self.links_bytes,
            LINKS_REFRESH.as_secs(),
            self.links_per_s,
            self.links_bytes_s() / 1e3
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_grow_with_pairs_and_members() {
        let c = HeartbeatCost::new(1000, &[1, 10, 5000, 6000]);
        // magic + tag + type + 8-byte boot stamp + name
        assert_eq!(c.beat_bytes, auth::OVERHEAD + 1 + 8 + node_name(999).len());
        assert_eq!(c.beats_per_s, 200.0);
        assert_eq!(c.successor[0].received_per_s, 200.0);
        assert_eq!(c.successor[1].received_per_s, 2000.0);
        // capped at one pair per other speaker
        assert_eq!(c.successor[2].pairs, 999);
        assert_eq!(c.successor.len(), 3);
        assert_eq!(c.links_per_s, 999.0);
        let small = HeartbeatCost::new(3, &[1]);
        assert_eq!(small.links_per_s, 2.0);
    }
}
