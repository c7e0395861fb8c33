//! Replays every seed and crash reproducer in `fuzz/seeds/<target>/` through the target's body,
//! so what the fuzzer once found stays fixed without nightly Rust or libFuzzer.

use std::path::PathBuf;

/// The files of `fuzz/seeds/<target>/`, sorted, with their contents. A target without seeds
/// is a broken checkout, not a pass.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/seeds/{target}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("seed directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seeds", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn replay(target: &str, body: fn(&[u8])) {
    for (path, bytes) in seeds(target) {
        let outcome = std::panic::catch_unwind(|| body(&bytes));
        assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
    }
}

#[test]
fn bgp_decode_seeds_replay() {
    replay("bgp_decode", super::bgp_decode);
}

#[test]
fn bfd_decode_seeds_replay() {
    replay("bfd_decode", super::bfd_decode);
}

#[test]
fn layer2_frame_seeds_replay() {
    replay("layer2_frame", super::layer2_frame);
}

/// The frame seeds are what the responders answer, not noise.
#[test]
fn layer2_seeds_reach_the_answers() {
    use crate::layer2::frames::{self, EthernetHeader, Ipv6Header, MacAddr};
    let me = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let seed = |name: &str| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/layer2_frame");
        std::fs::read(dir.join(name)).expect("seed")
    };
    assert!(frames::arp_response(&seed("arp-request-owned"), me, |_| true).is_some());
    assert!(frames::arp_response(&seed("arp-gratuitous"), me, |_| true).is_none());
    for name in ["ns-owned", "ns-dad", "ns-unicast-no-option"] {
        let frame = seed(name);
        let (_, packet) = EthernetHeader::parse(&frame).expect("Ethernet");
        assert!(frames::parse_ns_packet(packet).is_some(), "{name}");
        let (header, icmp) = Ipv6Header::parse(packet).expect("IPv6");
        assert!(
            frames::ndp_response(header.src, icmp, me, |_| true).is_some(),
            "{name}"
        );
    }
}
