//! The foca configurations the membership benchmark compares: the speaker's own defaults, and
//! hashicorp/memberlist's `DefaultLANConfig` (what MetalLB's speakers run) expressed in foca's
//! terms as closely as foca allows.
//!
//! Where foca cannot follow memberlist:
//! - Suspicion: memberlist (Lifeguard) starts a suspicion at `SuspicionMaxTimeoutMult` (6) ×
//!   the minimum and shortens it towards the minimum, `SuspicionMult` (4) × max(1, log10 n) ×
//!   `ProbeInterval` (12 s at 1,000 members), as independent suspicions confirm it; foca has one
//!   fixed timeout, set here to that minimum: memberlist's detection can only be slower.
//! - memberlist also probes over TCP when UDP fails, stretches its probe interval when the node
//!   itself is slow (awareness, up to 8 ×) and syncs the full state over TCP every
//!   `PushPullInterval` (30 s, × 6 at 1,000 members); foca does none of that. foca's periodic
//!   announce (one member every 30 s, a one-datagram sample of members in reply) stands in
//!   for the push/pull.
//! - Datagrams are foca's postcard encoding in the speaker's HMAC envelope for both: the
//!   comparison is of timers and fan-outs, not of memberlist's msgpack wire format.

use ferrolb_speaker::membership::{GossipTimers, foca_config};
use std::num::{NonZeroU8, NonZeroU32};
use std::time::Duration;

/// A named foca configuration.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Short name for the report.
    pub name: String,
    /// The configuration.
    pub config: foca::Config,
}

/// The speaker's configuration with `timers` (its defaults: [`GossipTimers::default`]).
pub fn ferrolb(name: &str, timers: &GossipTimers) -> anyhow::Result<Profile> {
    Ok(Profile {
        name: name.to_string(),
        config: foca_config(timers)?,
    })
}

/// memberlist's `DefaultLANConfig` for a cluster of `members`, as a foca configuration.
pub fn memberlist_lan(members: usize) -> anyhow::Result<Profile> {
    let n = u32::try_from(members)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| anyhow::anyhow!("the cluster needs between 1 and 2^32 members"))?;
    // ProbeInterval 1 s, ProbeTimeout 500 ms, IndirectChecks 3, suspicion 4 × max(1, log10 n)
    // × 1 s, GossipInterval 200 ms to GossipNodes 3, periodic announce for the push/pull.
    let mut config = foca::Config::new_lan(n);
    // memberlist's retransmitLimit: RetransmitMult (4) × ceil(log10(n + 1)); foca's new_lan
    // rounds the logarithm down instead.
    let retransmits = 4.0 * f64::from(n.get().saturating_add(1)).log10().ceil();
    config.max_transmissions = NonZeroU8::new(retransmits.clamp(1.0, 255.0) as u8)
        .ok_or_else(|| anyhow::anyhow!("retransmit limit out of range"))?;
    // The same envelope as the speaker's: the payload leaves room for the HMAC header
    // (memberlist's UDPBufferSize is 1,400 bytes, its own envelope included).
    let speaker = foca_config(&GossipTimers::default())?;
    config.max_packet_size = speaker.max_packet_size;
    // memberlist forgets dead members after GossipToTheDeadTime (30 s) but never removes
    // them from its member list; foca's knob for the same is the removal delay.
    config.remove_down_after = speaker.remove_down_after;
    Ok(Profile {
        name: "memberlist-lan".to_string(),
        config,
    })
}

/// A one-line summary of a configuration's timers.
pub fn describe(config: &foca::Config) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let periodic = |p: &Option<foca::PeriodicParams>| match p {
        Some(p) => format!("{:.0} ms to {}", ms(p.frequency), p.num_members),
        None => "off".to_string(),
    };
    format!(
        "probe {:.0} ms, probe RTT {:.0} ms, {} indirect, suspect->down {:.0} ms, gossip {}, \
         {} transmissions per update, announce {}, announce to down {}",
        ms(config.probe_period),
        ms(config.probe_rtt),
        config.num_indirect_probes,
        ms(config.suspect_to_down_after),
        periodic(&config.periodic_gossip),
        config.max_transmissions,
        periodic(&config.periodic_announce),
        periodic(&config.periodic_announce_to_down_members),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberlist_profile_follows_default_lan_config_at_1000_members() {
        let p = memberlist_lan(1000).expect("profile");
        assert_eq!(p.config.probe_period, Duration::from_secs(1));
        assert_eq!(p.config.probe_rtt, Duration::from_millis(500));
        assert_eq!(p.config.num_indirect_probes.get(), 3);
        // 4 × log10(1000) × 1 s
        assert_eq!(p.config.suspect_to_down_after, Duration::from_secs(12));
        // 4 × ceil(log10(1001))
        assert_eq!(p.config.max_transmissions.get(), 16);
        let gossip = p.config.periodic_gossip.expect("gossip");
        assert_eq!(
            (gossip.frequency, gossip.num_members.get()),
            (Duration::from_millis(200), 3)
        );
        // Small clusters: the logarithm is floored at 1 (suspicion 4 s, as MetalLB users see).
        let small = memberlist_lan(5).expect("profile");
        assert_eq!(small.config.suspect_to_down_after, Duration::from_secs(4));
        assert_eq!(small.config.max_transmissions.get(), 4);
    }

    #[test]
    fn ferrolb_profile_is_the_speakers_configuration() {
        let p = ferrolb("ferrolb", &GossipTimers::default()).expect("profile");
        assert_eq!(p.config.probe_period, Duration::from_millis(50));
        assert_eq!(p.config.suspect_to_down_after, Duration::from_millis(150));
    }
}
