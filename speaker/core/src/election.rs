//! Layer 2 owner election by rendezvous (highest random weight) hashing.
//!
//! Every speaker scores each eligible node for an IP and the highest score wins. No messages are
//! exchanged: speakers agree because they hash the same inputs with the same function. Removing
//! a node moves only the IPs it owned (every other IP's winner still has the highest score),
//! and IPs spread evenly because scores are independent per (node, IP).
//!
//! # The score function (a wire-level contract)
//!
//! All speakers of a cluster must compute identical scores, also while a rolling upgrade runs
//! two versions side by side, so the function is fixed here and covered by golden tests.
//! Changing it is a breaking change that moves IPs during upgrades.
//!
//! `score(node, ip) = SipHash-2-4(key, message)` read as a `u64` (SipHash's little-endian
//! output), where
//! - `key` is the 16 ASCII bytes `ferrolb-election` (k0 = first 8 bytes little-endian,
//!   k1 = last 8 bytes little-endian, as in the SipHash paper);
//! - `message` is the byte length of the node name as a 4-byte big-endian integer, the node
//!   name's UTF-8 bytes, then the IP's octets (4 for IPv4, 16 for IPv6). The length prefix
//!   makes the encoding unambiguous.
//!
//! Ties (equal scores, astronomically unlikely) go to the node name that sorts first
//! bytewise, so the result is still a function of the candidate set alone.
//!
//! # Preferred nodes
//!
//! An `L2Advertisement` may rank nodes with `preferredNodeSelectors`. [`elect_preferred`] then
//! keeps only the candidates with the highest preference score and elects among them as
//! above, as MetalLB speaker/layer2_controller.go sortL2Candidates orders candidates by score
//! first and hash second. Without preferences (all scores equal) the result is exactly
//! [`elect`]'s, so the contract above is unchanged for clusters that do not use them.
//!
//! SipHash-2-4 is implemented below rather than taken from `std`: `DefaultHasher` and
//! `RandomState` are explicitly unstable across releases and seeded per process, and
//! `std::hash::SipHasher` is deprecated. A fixed, public key is fine: the goal is a stable,
//! well-mixed function, not secrecy.

use std::net::IpAddr;

/// Key of the election hash: the 16 bytes `ferrolb-election`.
pub const ELECTION_KEY: [u8; 16] = *b"ferrolb-election";

/// Score of `node` for `ip`; the highest score among eligible nodes owns the IP.
pub fn score(node: &str, ip: IpAddr) -> u64 {
    let mut msg = Vec::with_capacity(4 + node.len() + 16);
    // Node names are DNS subdomains (≤ 253 bytes); saturating keeps this total for any input.
    let len = u32::try_from(node.len()).unwrap_or(u32::MAX);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(node.as_bytes());
    match ip {
        IpAddr::V4(v4) => msg.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => msg.extend_from_slice(&v6.octets()),
    }
    siphash24(&ELECTION_KEY, &msg)
}

/// The owner of `ip` among `candidates` (eligible node names, any order, duplicates allowed),
/// or `None` when there is no candidate.
pub fn elect<'a, I>(ip: IpAddr, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|n| (score(n, ip), n))
        // Highest score wins; on a tie the smaller name wins, hence `Reverse` on the name.
        .max_by(|(sa, na), (sb, nb)| sa.cmp(sb).then_with(|| nb.cmp(na)))
        .map(|(_, n)| n)
}

/// The owner of `ip` among `candidates` given as (node name, preference score): the highest
/// score wins, and among the nodes sharing it the rendezvous hash decides ([`elect`]).
pub fn elect_preferred<'a, I>(ip: IpAddr, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = (&'a str, u64)>,
{
    let candidates: Vec<(&str, u64)> = candidates.into_iter().collect();
    let best = candidates.iter().map(|(_, s)| *s).max()?;
    elect(
        ip,
        candidates
            .into_iter()
            .filter(|(_, s)| *s == best)
            .map(|(n, _)| n),
    )
}

/// SipHash-2-4 (Aumasson & Bernstein, 2012) of `msg` under a 128-bit key.
pub fn siphash24(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(first8(&key[..8]));
    let k1 = u64::from_le_bytes(first8(&key[8..]));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(first8(chunk));
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    // Last block: remaining bytes, zero padded, with the message length (mod 256) on top.
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[7] = msg.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn first8(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    let n = bytes.len().min(8);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn siphash_matches_reference_vectors() {
        // Key 00..0f as in the SipHash paper and its reference `vectors.h`.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0u8..64).collect();
        // Appendix A of the paper: 15-byte message 00..0e.
        assert_eq!(siphash24(&key, &msg[..15]), 0xa129_ca61_49be_45e5);
        // vectors.h, first entry (empty message): 31 0e 0e dd 47 db 6f 72.
        assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
        // vectors.h, entry 8 (message 00..07): 62 24 93 9a 79 f5 f5 93.
        assert_eq!(siphash24(&key, &msg[..8]), 0x93f5_f579_9a93_2462);
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_agrees_with_std_reference_for_all_lengths() {
        // std's deprecated SipHasher is SipHash-2-4 over the raw bytes written; it is an
        // independent implementation to check every tail length against.
        use std::hash::Hasher;
        let key = ELECTION_KEY;
        let k0 = u64::from_le_bytes(first8(&key[..8]));
        let k1 = u64::from_le_bytes(first8(&key[8..]));
        let msg: Vec<u8> = (0u8..=255).map(|b| b.wrapping_mul(37)).collect();
        for len in 0..msg.len() {
            let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
            h.write(&msg[..len]);
            assert_eq!(siphash24(&key, &msg[..len]), h.finish(), "length {len}");
        }
    }

    #[test]
    fn scores_are_golden() {
        // If these change, speakers of different versions disagree on owners: do not update
        // them without a migration plan.
        assert_eq!(score("node-a", ip("10.200.0.10")), 0xf256_f10b_f3fe_6345);
        assert_eq!(score("node-b", ip("10.200.0.10")), 0xdebd_ab7e_68e6_90a3);
        assert_eq!(score("node-c", ip("10.200.0.10")), 0x96d8_42c1_5f56_7f44);
        assert_eq!(score("node-a", ip("fd00:200::10")), 0xae81_67bc_23a5_2a2f);
        assert_eq!(
            elect(ip("10.200.0.10"), ["node-a", "node-b", "node-c"]),
            Some("node-a")
        );
    }

    #[test]
    fn message_encoding_is_length_prefixed() {
        let key = ELECTION_KEY;
        let mut msg = vec![0, 0, 0, 6];
        msg.extend_from_slice(b"node-a");
        msg.extend_from_slice(&[10, 200, 0, 10]);
        assert_eq!(score("node-a", ip("10.200.0.10")), siphash24(&key, &msg));
    }

    #[test]
    fn no_candidates_no_owner() {
        assert_eq!(elect(ip("10.0.0.1"), []), None);
        assert_eq!(elect(ip("10.0.0.1"), ["only"]), Some("only"));
    }

    /// MetalLB speaker/layer2_controller.go sortL2Candidates: highest preference score first,
    /// the hash only among equal scores; equal scores everywhere change nothing (MetalLB
    /// e2etest/l2tests/preferred_node.go "should behave like the baseline advertisement when
    /// no node matches the preferred selector").
    #[test]
    fn preference_wins_over_the_hash_and_equal_preferences_change_nothing() {
        let nodes = ["node-a", "node-b", "node-c"];
        for i in 0..200u32 {
            let a = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + i));
            let natural = elect(a, nodes).expect("candidates");
            for uniform in [0, 10] {
                assert_eq!(
                    elect_preferred(a, nodes.map(|n| (n, uniform))),
                    Some(natural)
                );
            }
            // Prefer one node that is not the natural winner: it wins.
            let preferred = nodes
                .into_iter()
                .find(|n| *n != natural)
                .expect("three nodes");
            let scored = nodes.map(|n| (n, if n == preferred { 100 } else { 0 }));
            assert_eq!(elect_preferred(a, scored), Some(preferred));
            // Two nodes share the top score: the hash decides between those two only.
            let scored = nodes.map(|n| (n, if n == natural { 0 } else { 50 }));
            let top: Vec<&str> = nodes.into_iter().filter(|n| *n != natural).collect();
            assert_eq!(elect_preferred(a, scored), elect(a, top));
        }
        assert_eq!(elect_preferred(ip("10.0.0.1"), []), None);
    }

    fn owners(nodes: &[&'static str], n: u32) -> BTreeMap<IpAddr, &'static str> {
        (0..n)
            .map(|i| {
                let a = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + i));
                (a, elect(a, nodes.iter().copied()).expect("candidates"))
            })
            .collect()
    }

    #[test]
    fn thousand_ips_spread_evenly_over_three_nodes() {
        let nodes = ["node-a", "node-b", "node-c"];
        let owners = owners(&nodes, 1000);
        for n in nodes {
            let count = owners.values().filter(|o| **o == n).count();
            // Even share is 333.3; ±15% is 283..=383.
            assert!((283..=383).contains(&count), "{n} owns {count} of 1000");
        }
        // Golden: the exact split is part of the contract too (same hash, same owners).
        let split: Vec<usize> = nodes
            .iter()
            .map(|n| owners.values().filter(|o| *o == n).count())
            .collect();
        assert_eq!(split, [337, 301, 362]);
        // IPv6 too.
        let mut v6 = BTreeMap::<&str, usize>::new();
        for i in 0..1000u128 {
            let a = IpAddr::V6(Ipv6Addr::from(u128::from(ip6("fd00:200::")) + i));
            *v6.entry(elect(a, nodes).expect("candidates")).or_default() += 1;
        }
        for n in nodes {
            let count = v6.get(n).copied().unwrap_or(0);
            assert!(
                (283..=383).contains(&count),
                "{n} owns {count} of 1000 IPv6"
            );
        }
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn removing_a_node_moves_only_its_ips() {
        let before = owners(&["node-a", "node-b", "node-c"], 1000);
        let after = owners(&["node-a", "node-c"], 1000);
        let mut moved = 0;
        for (a, owner) in &before {
            if *owner == "node-b" {
                moved += 1;
                assert_ne!(after[a], "node-b");
            } else {
                assert_eq!(after[a], *owner, "{a} moved although its owner stayed");
            }
        }
        assert!(moved > 0);
        // The departed node's IPs are shared by the survivors, not dumped on one.
        let to_a = before
            .iter()
            .filter(|(a, o)| **o == "node-b" && after[*a] == "node-a")
            .count();
        assert!(
            to_a > moved / 4 && to_a < moved * 3 / 4,
            "{to_a} of {moved} went to node-a"
        );
    }

    proptest! {
        #[test]
        fn winner_is_a_candidate_and_order_independent(
            names in proptest::collection::btree_set("[a-z0-9-]{1,20}", 1..8),
            raw in any::<u32>(),
            rotate in 0usize..8,
        ) {
            let a = IpAddr::V4(Ipv4Addr::from(raw));
            let mut list: Vec<&str> = names.iter().map(String::as_str).collect();
            let w = elect(a, list.iter().copied()).expect("non-empty");
            prop_assert!(names.contains(w));
            let r = rotate % list.len();
            list.rotate_left(r);
            list.reverse();
            prop_assert_eq!(elect(a, list.iter().copied()), Some(w));
        }

        #[test]
        fn removing_a_loser_keeps_the_winner(
            names in proptest::collection::btree_set("[a-z0-9-]{1,20}", 2..8),
            raw in any::<u128>(),
            pick in any::<usize>(),
        ) {
            let a = IpAddr::V6(Ipv6Addr::from(raw));
            let list: Vec<&str> = names.iter().map(String::as_str).collect();
            let w = elect(a, list.iter().copied()).expect("non-empty");
            let losers: Vec<&str> = list.iter().copied().filter(|n| *n != w).collect();
            let gone = losers[pick % losers.len()];
            prop_assert_eq!(elect(a, list.iter().copied().filter(|n| *n != gone)), Some(w));
        }

        #[test]
        fn adding_a_node_either_keeps_the_winner_or_wins(
            names in proptest::collection::btree_set("[a-z0-9-]{1,20}", 1..8),
            extra in "[a-z0-9-]{1,20}",
            raw in any::<u32>(),
        ) {
            let a = IpAddr::V4(Ipv4Addr::from(raw));
            let w = elect(a, names.iter().map(String::as_str)).expect("non-empty");
            let w2 = elect(a, names.iter().map(String::as_str).chain([extra.as_str()]))
                .expect("non-empty");
            prop_assert!(w2 == w || w2 == extra.as_str());
        }
    }
}
