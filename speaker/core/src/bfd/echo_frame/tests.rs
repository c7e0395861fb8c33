use super::*;

const ME: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);

#[test]
fn built_datagram_parses_back_with_valid_checksums() {
    let d = build_ipv4(ME, ME, 7, b"hello echo");
    assert_eq!(d.len(), 20 + 8 + 10);
    // The IP header sums to zero with its checksum in place.
    assert_eq!(fold(sum16(0, &d[..20])), 0);
    let p = parse_ipv4(&d).expect("parses");
    assert_eq!(p.src, ME);
    assert_eq!(p.dst, ME);
    assert_eq!(p.ttl, ECHO_TTL);
    assert_eq!(p.payload, b"hello echo");
}

#[test]
fn known_header_checksum() {
    // Header fields fixed: the checksum is the RFC 1071 sum computed independently.
    let d = build_ipv4(
        Ipv4Addr::new(192, 168, 0, 1),
        Ipv4Addr::new(192, 168, 0, 199),
        0,
        &[],
    );
    // 4500 001c 0000 4000 ff11 ---- c0a8 0001 c0a8 00c7, tos c0 -> 45c0
    let expected = fold(sum16(
        0,
        &[
            0x45, 0xc0, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x00, 0xff, 0x11, 0x00, 0x00, 192, 168, 0, 1,
            192, 168, 0, 199,
        ],
    ));
    assert_eq!(u16::from_be_bytes([d[10], d[11]]), expected);
}

#[test]
fn corrupted_datagrams_are_rejected() {
    let good = build_ipv4(ME, ME, 1, b"payload!");
    let mut bad_ip = good.clone();
    bad_ip[15] ^= 1;
    assert_eq!(parse_ipv4(&bad_ip), None, "IP header checksum");
    let mut bad_udp = good.clone();
    let last = bad_udp.len() - 1;
    bad_udp[last] ^= 0x80;
    assert_eq!(parse_ipv4(&bad_udp), None, "UDP checksum");
    let mut other_port = good.clone();
    other_port[23] = 0xc8; // 3784, the control port
    assert_eq!(parse_ipv4(&other_port), None, "destination port");
    let mut fragment = good.clone();
    fragment[6] = 0x20;
    assert_eq!(parse_ipv4(&fragment), None, "more fragments");
    assert_eq!(parse_ipv4(&good[..25]), None, "truncated");
    assert_eq!(parse_ipv4(&[]), None);
    let mut v6 = good;
    v6[0] = 0x65;
    assert_eq!(parse_ipv4(&v6), None, "not IPv4");
}

#[test]
fn zero_udp_checksum_is_accepted() {
    let mut d = build_ipv4(ME, ME, 1, b"x");
    d[26] = 0;
    d[27] = 0;
    assert!(parse_ipv4(&d).is_some());
}
