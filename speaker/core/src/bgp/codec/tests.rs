use super::*;
use crate::bgp::RouteAttributes;
use bytes::BytesMut;
use ferrolb_config::CommunityValue;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv6Unicast};
use netgauze_iana::address_family::AddressType;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str, four: bool) -> Decoded {
    let bytes = hex(s);
    decode_one(&bytes, four)
        .expect("decodes")
        .expect("complete")
}

fn update_of(d: &Decoded) -> UpdateSummary {
    match &d.message {
        Message::Update(u) => summarize_update(u),
        other => panic!("expected UPDATE, got {other:?}"),
    }
}

fn open_of(d: &Decoded) -> PeerOpen {
    match &d.message {
        Message::Open(o) => PeerOpen::from_open(o),
        other => panic!("expected OPEN, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Golden captures.
//
// Captured on 2026-11-23 from BIRD 2.0.12 (AS 4200000001, router id 10.200.50.1) peering with
// FRR bgpd 8.4.4 (AS 64513, router id 10.200.50.2) in two network namespaces joined by a veth
// pair (10.200.50.0/24, fd00:200:50::/64): `tcpdump -i <veth> -w cap.pcap 'tcp port 179'`, then
// `tshark -r cap.pcap -T fields -e tcp.payload` split into BGP messages. BIRD exported
// 10.200.0.10/32 with community (64512,100) and large community (4200000001,1,2) on an IPv4
// session and fd00:200::10/128 with (64512,600) on an IPv6 session; FRR exported 10.201.0.0/24
// and fd00:200:201::/64 through a route-map setting 64513:200, large 64513:3:4 and
// local-preference 150 (not sent on eBGP). Then BIRD withdrew both and shut the IPv4 session
// down. The capture script is `golden-capture.sh` next to this file.

const BIRD_OPEN_V4: &str = "ffffffffffffffffffffffffffffffff003501045ba000090ac832011802160104000100010200400200784104fa56ea0146004700";
const BIRD_OPEN_V6: &str = "ffffffffffffffffffffffffffffffff003501045ba000090ac832011802160104000200010200400200784104fa56ea0146004700";
const FRR_OPEN_V4: &str = "ffffffffffffffffffffffffffffffff00610104fc0100090ac83202440206010400010001020280000202020002024600020641040000fc0102020600020645040001010102094907056672722d670002044002c0780209470700010180000000";
const KEEPALIVE: &str = "ffffffffffffffffffffffffffffffff001304";
const BIRD_UPDATE_V4: &str = "ffffffffffffffffffffffffffffffff0046020000002a400101004002060201fa56ea014003040ac83201c00804fc000064c0200cfa56ea010000000100000002200ac8000a";
const BIRD_EOR_V4: &str = "ffffffffffffffffffffffffffffffff00170200000000";
const BIRD_UPDATE_V6: &str = "ffffffffffffffffffffffffffffffff0065020000004e900e003600020120fd000200005000000000000000000001fe80000000000000a06d3efffee92a010080fd000200000000000000000000000010400101004002060201fa56ea01c00804fc000258";
const BIRD_EOR_V6: &str = "ffffffffffffffffffffffffffffffff001d0200000006800f03000201";
const FRR_UPDATE_V4_REFLECTED: &str = "ffffffffffffffffffffffffffffffff004b020000002f400101005002000a02020000fc01fa56ea014003040ac83202c00804fc000064c0200cfa56ea010000000100000002200ac8000a";
const FRR_UPDATE_V4: &str = "ffffffffffffffffffffffffffffffff004d0200000032400101005002000602010000fc014003040ac8320280040400000000c00804fc0100c8c0200c0000fc010000000300000004180ac900";
const FRR_UPDATE_V6: &str = "ffffffffffffffffffffffffffffffff0074020000005d900e002e00020120fd000200005000000000000000000002fe800000000000007478fbfffe99ad300040fd00020002010000400101005002000602010000fc0180040400000000c00804fc0100c8c0200c0000fc010000000300000004";
const BIRD_WITHDRAW_V4: &str = "ffffffffffffffffffffffffffffffff001c020005200ac8000a0000";
const BIRD_WITHDRAW_V6: &str = "ffffffffffffffffffffffffffffffff002f0200000018900f001400020180fd000200000000000000000000000010";
const BIRD_CEASE: &str = "ffffffffffffffffffffffffffffffff0015030602";

#[test]
fn golden_bird_open() {
    let o = open_of(&decode_hex(BIRD_OPEN_V4, false));
    assert_eq!(o.version, 4);
    assert_eq!(o.my_as_field, AS_TRANS);
    assert_eq!(o.asn, 4_200_000_001);
    assert_eq!(o.hold_time, 9);
    assert_eq!(o.router_id, Ipv4Addr::new(10, 200, 50, 1));
    assert!(o.four_octet_as && o.route_refresh && o.graceful_restart);
    assert!(o.mp_ipv4 && !o.mp_ipv6);
    let o6 = open_of(&decode_hex(BIRD_OPEN_V6, false));
    assert!(!o6.mp_ipv4 && o6.mp_ipv6);
    assert!(!o6.accepts_ipv4());
}

#[test]
fn golden_frr_open_with_fqdn_addpath_and_extended_message() {
    let d = decode_hex(FRR_OPEN_V4, false);
    assert_eq!(d.malformed_capabilities, 0);
    let o = open_of(&d);
    assert_eq!(o.asn, 64513);
    assert_eq!(o.my_as_field, 64513);
    assert_eq!(o.hold_time, 9);
    assert_eq!(o.router_id, Ipv4Addr::new(10, 200, 50, 2));
    assert!(o.four_octet_as && o.route_refresh && o.graceful_restart && o.mp_ipv4);
}

#[test]
fn golden_keepalive_and_cease() {
    assert_eq!(decode_hex(KEEPALIVE, true).message, Message::KeepAlive);
    assert_eq!(
        decode_hex(BIRD_CEASE, true).message,
        Message::Notification(Notification::cease_admin_shutdown())
    );
    // Our own bytes for both are identical to BIRD's.
    assert_eq!(encode(Message::KeepAlive).expect("encode"), hex(KEEPALIVE));
    assert_eq!(
        encode(Message::Notification(Notification::cease_admin_shutdown())).expect("encode"),
        hex(BIRD_CEASE)
    );
}

#[test]
fn golden_bird_update_v4() {
    let u = update_of(&decode_hex(BIRD_UPDATE_V4, true));
    assert_eq!(u.announced, vec![net("10.200.0.10/32")]);
    assert_eq!(u.origin, Some(0));
    assert_eq!(u.as_path, vec![4_200_000_001]);
    assert_eq!(u.next_hop, Some("10.200.50.1".parse().expect("ip")));
    assert_eq!(
        u.communities,
        vec![
            CommunityValue::Standard((64512 << 16) | 100),
            CommunityValue::Large(4_200_000_001, 1, 2)
        ]
    );
}

#[test]
fn our_v4_update_is_byte_identical_to_birds() {
    let ctx = UpdateContext {
        local_as: 4_200_000_001,
        ebgp: true,
        four_octet_as: true,
        next_hop_v4: Some(Ipv4Addr::new(10, 200, 50, 1)),
        next_hop_v6: None,
        next_hop_v6_link_local: None,
        ipv4_via_ipv6: false,
    };
    let attrs = RouteAttributes {
        local_pref: Some(300), // eBGP: must not be sent
        communities: vec![
            CommunityValue::Standard((64512 << 16) | 100),
            CommunityValue::Large(4_200_000_001, 1, 2),
        ],
    };
    let ups = build_announcements(&ctx, &attrs, &[net("10.200.0.10/32")]).expect("build");
    assert_eq!(ups.len(), 1);
    let bytes = encode(Message::Update(ups[0].clone())).expect("encode");
    assert_eq!(bytes, hex(BIRD_UPDATE_V4));
}

#[test]
fn our_v6_update_is_byte_identical_to_birds() {
    let ctx = UpdateContext {
        local_as: 4_200_000_001,
        ebgp: true,
        four_octet_as: true,
        next_hop_v4: None,
        next_hop_v6: Some("fd00:200:50::1".parse().expect("ip")),
        next_hop_v6_link_local: Some("fe80::a06d:3eff:fee9:2a01".parse().expect("ip")),
        ipv4_via_ipv6: false,
    };
    let attrs = RouteAttributes {
        local_pref: None,
        communities: vec![CommunityValue::Standard((64512 << 16) | 600)],
    };
    let ups = build_announcements(&ctx, &attrs, &[net("fd00:200::10/128")]).expect("build");
    let bytes = encode(Message::Update(ups[0].clone())).expect("encode");
    assert_eq!(bytes, hex(BIRD_UPDATE_V6));
}

#[test]
fn our_withdrawals_are_byte_identical_to_birds() {
    let w4 = build_withdrawals(&[net("10.200.0.10/32")]).expect("build");
    assert_eq!(
        encode(Message::Update(w4[0].clone())).expect("encode"),
        hex(BIRD_WITHDRAW_V4)
    );
    let w6 = build_withdrawals(&[net("fd00:200::10/128")]).expect("build");
    assert_eq!(
        encode(Message::Update(w6[0].clone())).expect("encode"),
        hex(BIRD_WITHDRAW_V6)
    );
}

#[test]
fn golden_end_of_rib() {
    let d = decode_hex(BIRD_EOR_V4, true);
    let Message::Update(u) = &d.message else {
        panic!("update")
    };
    assert_eq!(u.end_of_rib(), Some(AddressType::Ipv4Unicast));
    let d = decode_hex(BIRD_EOR_V6, true);
    let Message::Update(u) = &d.message else {
        panic!("update")
    };
    assert_eq!(u.end_of_rib(), Some(AddressType::Ipv6Unicast));
    // Ours decode the same way (BIRD sends flags 0x80, we 0x80 too: identical bytes).
    assert_eq!(
        encode(Message::Update(end_of_rib(true))).expect("encode"),
        hex(BIRD_EOR_V6)
    );
    assert_eq!(
        encode(Message::Update(end_of_rib(false))).expect("encode"),
        hex(BIRD_EOR_V4)
    );
}

#[test]
fn golden_bird_update_v6_with_link_local_next_hop() {
    let u = update_of(&decode_hex(BIRD_UPDATE_V6, true));
    assert_eq!(u.announced, vec![net("fd00:200::10/128")]);
    assert_eq!(u.next_hop, Some("fd00:200:50::1".parse().expect("ip")));
    assert_eq!(
        u.next_hop_link_local,
        Some("fe80::a06d:3eff:fee9:2a01".parse().expect("ip"))
    );
    assert_eq!(u.as_path, vec![4_200_000_001]);
    assert_eq!(
        u.communities,
        vec![CommunityValue::Standard((64512 << 16) | 600)]
    );
}

#[test]
fn golden_frr_updates() {
    let u = update_of(&decode_hex(FRR_UPDATE_V4, true));
    assert_eq!(u.announced, vec![net("10.201.0.0/24")]);
    assert_eq!(u.as_path, vec![64513]);
    assert_eq!(u.next_hop, Some("10.200.50.2".parse().expect("ip")));
    assert_eq!(u.med, Some(0));
    assert_eq!(u.local_pref, None, "eBGP: FRR does not send LOCAL_PREF");
    assert_eq!(
        u.communities,
        vec![
            CommunityValue::Standard((64513 << 16) | 200),
            CommunityValue::Large(64513, 3, 4)
        ]
    );
    let r = update_of(&decode_hex(FRR_UPDATE_V4_REFLECTED, true));
    assert_eq!(r.as_path, vec![64513, 4_200_000_001]);
    assert_eq!(r.announced, vec![net("10.200.0.10/32")]);
    let v6 = update_of(&decode_hex(FRR_UPDATE_V6, true));
    assert_eq!(v6.announced, vec![net("fd00:200:201::/64")]);
    assert_eq!(v6.next_hop, Some("fd00:200:50::2".parse().expect("ip")));
    assert_eq!(
        v6.next_hop_link_local,
        Some("fe80::7478:fbff:fe99:ad30".parse().expect("ip"))
    );
}

#[test]
fn golden_withdrawals() {
    let u = update_of(&decode_hex(BIRD_WITHDRAW_V4, true));
    assert_eq!(u.withdrawn, vec![net("10.200.0.10/32")]);
    assert!(u.announced.is_empty());
    let u = update_of(&decode_hex(BIRD_WITHDRAW_V6, true));
    assert_eq!(u.withdrawn, vec![net("fd00:200::10/128")]);
}

#[test]
fn frr_update_read_with_two_octet_as_is_an_as_path_error_not_a_panic() {
    // The same bytes read with the wrong AS_PATH width must give an UPDATE error, not garbage
    // or a panic: the reason the width follows the negotiated capability.
    match decode_one(&hex(FRR_UPDATE_V4), false) {
        Ok(Some(d)) => {
            // netgauze may accept a 2-octet reading of the segment when lengths happen to fit.
            let u = update_of(&d);
            assert_ne!(u.as_path, vec![64513]);
        }
        Ok(None) => panic!("complete message"),
        Err(CodecError::Malformed { notification, .. }) => assert_eq!(notification.code, 3),
        Err(e) => panic!("unexpected {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed input → RFC 4271 §6 NOTIFICATIONs.

fn expect_notification(bytes: &[u8], four: bool) -> Notification {
    match decode_one(bytes, four) {
        Err(CodecError::Malformed { notification, .. }) => notification,
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn bad_marker_is_1_1() {
    let mut b = hex(KEEPALIVE);
    b[3] = 0;
    assert_eq!(
        expect_notification(&b, true),
        Notification::new(1, 1, vec![])
    );
}

#[test]
fn bad_lengths_are_1_2_with_the_length() {
    let mut b = hex(KEEPALIVE);
    b[17] = 18;
    assert_eq!(
        expect_notification(&b, true),
        Notification::new(1, 2, vec![0, 18])
    );
    // KEEPALIVE must be exactly 19.
    let mut b = hex(KEEPALIVE);
    b[17] = 20;
    b.push(0);
    assert_eq!(
        expect_notification(&b, true),
        Notification::new(1, 2, vec![0, 20])
    );
    // Over 4096.
    let mut b = hex(KEEPALIVE);
    b[16] = 0x10;
    b[17] = 0x01;
    assert_eq!(
        expect_notification(&b, true),
        Notification::new(1, 2, vec![0x10, 0x01])
    );
    // OPEN shorter than 29.
    let mut b = hex(KEEPALIVE);
    b[17] = 28;
    b[18] = 1;
    b.extend([0u8; 9]);
    assert_eq!(expect_notification(&b, true).subcode, 2);
}

#[test]
fn bad_type_is_1_3_with_the_type() {
    let mut b = hex(KEEPALIVE);
    b[18] = 9;
    assert_eq!(
        expect_notification(&b, true),
        Notification::new(1, 3, vec![9])
    );
}

#[test]
fn open_version_3_is_2_1() {
    let mut b = hex(BIRD_OPEN_V4);
    b[19] = 3;
    let n = expect_notification(&b, false);
    assert_eq!((n.code, n.subcode), (2, 1));
}

#[test]
fn open_hold_time_1_is_2_6() {
    let mut b = hex(BIRD_OPEN_V4);
    b[22] = 0;
    b[23] = 1;
    let n = expect_notification(&b, false);
    assert_eq!((n.code, n.subcode), (2, 6));
}

#[test]
fn update_with_attribute_length_overflow_is_3_x() {
    let mut b = hex(BIRD_UPDATE_V4);
    // Total path attribute length (offset 21..23) larger than the message.
    b[22] = 0x7f;
    let n = expect_notification(&b, true);
    assert_eq!(n.code, 3);
}

#[test]
fn truncated_message_waits_for_more() {
    let b = hex(BIRD_UPDATE_V4);
    let mut buf = BytesMut::from(&b[..30]);
    assert!(decode(&mut buf, true).expect("no error").is_none());
    buf.extend_from_slice(&b[30..]);
    buf.extend_from_slice(&hex(KEEPALIVE));
    assert!(matches!(
        decode(&mut buf, true).expect("ok").map(|d| d.message),
        Some(Message::Update(_))
    ));
    assert_eq!(
        decode(&mut buf, true).expect("ok").map(|d| d.message),
        Some(Message::KeepAlive)
    );
    assert!(buf.is_empty());
}

#[test]
fn unknown_optional_attribute_is_kept() {
    // BIRD's v4 UPDATE plus an unknown optional transitive attribute type 0xf0 (4 octets).
    let mut b = hex(BIRD_UPDATE_V4);
    let extra = [0xc0u8, 0xf0, 0x04, 1, 2, 3, 4];
    let attr_len = u16::from_be_bytes([b[21], b[22]]) + extra.len() as u16;
    let insert_at = 23 + usize::from(u16::from_be_bytes([b[21], b[22]]));
    for (i, x) in extra.iter().enumerate() {
        b.insert(insert_at + i, *x);
    }
    b[21..23].copy_from_slice(&attr_len.to_be_bytes());
    let len = b.len() as u16;
    b[16..18].copy_from_slice(&len.to_be_bytes());
    let u = update_of(&decode_hex(
        &b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
        true,
    ));
    assert_eq!(u.other_attributes, vec![0xf0]);
    assert_eq!(u.announced, vec![net("10.200.0.10/32")]);
}

#[test]
fn malformed_optional_attribute_is_treat_as_withdraw_not_a_reset() {
    // COMMUNITIES with a length that is not a multiple of 4 (RFC 7606 §7.8: treat-as-withdraw).
    let mut b = hex(BIRD_UPDATE_V4);
    // Replace the communities attribute c0 08 04 fc000064 with c0 08 03 fc0000 + 1 pad byte
    // moved into... simpler: shrink its length to 3 and drop one value byte.
    let pos = b
        .windows(3)
        .position(|w| w == [0xc0, 0x08, 0x04])
        .expect("communities attribute");
    b[pos + 2] = 3;
    b.remove(pos + 3);
    let attr_len = u16::from_be_bytes([b[21], b[22]]) - 1;
    b[21..23].copy_from_slice(&attr_len.to_be_bytes());
    let len = b.len() as u16;
    b[16..18].copy_from_slice(&len.to_be_bytes());
    match decode_one(&b, true) {
        Ok(Some(d)) => {
            assert_eq!(d.malformed_attributes, 1, "{d:?}");
            let u = update_of(&d);
            assert_eq!(u.announced, vec![net("10.200.0.10/32")]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_notification_codes_decode() {
    let n = Notification::new(42, 99, vec![1, 2, 3]);
    let bytes = n.to_bytes();
    assert_eq!(
        decode_one(&bytes, true).expect("ok").map(|d| d.message),
        Some(Message::Notification(n))
    );
}

#[test]
fn notification_text() {
    assert_eq!(
        Notification::cease_admin_shutdown().to_string(),
        "Cease / Administrative Shutdown (6/2)"
    );
    let mut data = vec![5u8];
    data.extend_from_slice(b"maint");
    assert_eq!(
        Notification::new(6, 2, data).to_string(),
        "Cease / Administrative Shutdown (6/2): \"maint\""
    );
    assert_eq!(
        Notification::new(2, 2, vec![0xfc, 0x01]).to_string(),
        "OPEN Message Error / Bad Peer AS (2/2) data fc01"
    );
}

#[test]
fn open_uses_as_trans_for_large_as() {
    let o = build_open(&OpenConfig {
        asn: 4_200_000_099,
        hold_time: 90,
        router_id: Ipv4Addr::new(10, 200, 0, 1),
        ipv4: true,
        ipv6: false,
        graceful_restart: None,
        bfd_strict: false,
    });
    assert_eq!(o.my_as(), AS_TRANS);
    let p = PeerOpen::from_open(&o);
    assert_eq!(p.asn, 4_200_000_099);
    assert!(p.mp_ipv4 && !p.mp_ipv6 && !p.graceful_restart && p.route_refresh);
}

/// The BFD Strict-Mode capability (draft-ietf-idr-bgp-bfd-strict-mode §5): code 74, length
/// 0, present only when strict mode is on, and read back from a peer's OPEN.
#[test]
fn bfd_strict_mode_capability_is_code_74_with_no_value() {
    let cfg = |bfd_strict: bool| OpenConfig {
        asn: 64512,
        hold_time: 90,
        router_id: Ipv4Addr::new(10, 200, 0, 11),
        ipv4: true,
        ipv6: false,
        graceful_restart: None,
        bfd_strict,
    };
    let on = encode(Message::Open(build_open(&cfg(true)))).expect("encode");
    let off = encode(Message::Open(build_open(&cfg(false)))).expect("encode");
    // The capability TLV is the last one: the message ends with 4a 00.
    assert!(to_hex(&on).ends_with("4a00"), "{}", to_hex(&on));
    assert_eq!(on.len(), off.len() + 2);
    assert!(!to_hex(&off).ends_with("4a00"), "{}", to_hex(&off));
    let p = open_of(&decode_one(&on, false).expect("decode").expect("complete"));
    assert!(p.bfd_strict);
    let p = open_of(&decode_one(&off, false).expect("decode").expect("complete"));
    assert!(!p.bfd_strict);
}

/// The graceful restart capability's bytes (RFC 4724 §3, RFC 8538 §2): code 64, length 10, flags R (0x8)
/// and N (0x4) over 12 bits of restart time, then per family AFI, SAFI and the F bit (0x80).
#[test]
fn graceful_restart_capability_carries_r_n_f_and_the_restart_time() {
    let cfg = |restarting: bool| OpenConfig {
        asn: 64512,
        hold_time: 90,
        router_id: Ipv4Addr::new(10, 200, 0, 11),
        ipv4: true,
        ipv6: true,
        graceful_restart: Some(GracefulRestart {
            restart_time: 300,
            restarting,
        }),
        bfd_strict: false,
    };
    // 300 = 0x12c.
    let restarting_cap = "400a".to_string() + "c12c" + "00010180" + "00020180";
    let fresh_cap = "400a".to_string() + "412c" + "00010180" + "00020180";
    let bytes = encode(Message::Open(build_open(&cfg(true)))).expect("encode");
    assert!(
        to_hex(&bytes).contains(&restarting_cap),
        "{}",
        to_hex(&bytes)
    );
    let bytes = encode(Message::Open(build_open(&cfg(false)))).expect("encode");
    assert!(to_hex(&bytes).contains(&fresh_cap), "{}", to_hex(&bytes));
    let p = open_of(
        &decode_one(&bytes, false)
            .expect("decode")
            .expect("complete"),
    );
    assert!(p.graceful_restart && p.graceful_notification && !p.restarting);
    // The 12-bit field caps longer times instead of wrapping them.
    let long = OpenConfig {
        graceful_restart: Some(GracefulRestart {
            restart_time: 5000,
            restarting: false,
        }),
        ..cfg(false)
    };
    let bytes = encode(Message::Open(build_open(&long))).expect("encode");
    assert!(to_hex(&bytes).contains("400a4fff"), "{}", to_hex(&bytes));
    // Without graceful restart there is no capability 64 at all.
    let none = OpenConfig {
        graceful_restart: None,
        ..cfg(false)
    };
    let p = open_of(
        &decode_one(
            &encode(Message::Open(build_open(&none))).expect("encode"),
            false,
        )
        .expect("decode")
        .expect("complete"),
    );
    assert!(!p.graceful_restart && !p.graceful_notification && !p.restarting);
}

/// What the lab's routers announce as graceful restart helpers: BIRD 2.0 (capability 64 =
/// `0078`) without the N bit, FRR 8 (`c078`, captured just after it started) with R and N.
#[test]
fn golden_router_opens_graceful_restart_flags() {
    let bird = open_of(&decode_hex(BIRD_OPEN_V4, false));
    assert!(bird.graceful_restart && !bird.graceful_notification && !bird.restarting);
    let frr = open_of(&decode_hex(FRR_OPEN_V4, false));
    assert!(frr.graceful_restart && frr.graceful_notification && frr.restarting);
}

#[test]
fn hard_reset_carries_the_notification_it_stands_for() {
    let n = Notification::hard_reset(&Notification::cease_admin_shutdown());
    assert_eq!((n.code, n.subcode, n.data.clone()), (6, 9, vec![6, 2]));
    let bytes = encode(Message::Notification(n)).expect("encode");
    assert_eq!(
        to_hex(&bytes),
        "ffffffffffffffffffffffffffffffff00170306090602"
    );
    assert_eq!(
        Notification::cease_admin_reset(),
        Notification::new(6, 4, vec![])
    );
}

#[test]
fn batching_splits_large_tables_under_4096() {
    let ctx = UpdateContext {
        local_as: 64512,
        ebgp: false,
        four_octet_as: true,
        next_hop_v4: Some(Ipv4Addr::new(10, 200, 0, 1)),
        next_hop_v6: Some("fd00:200::1".parse().expect("ip")),
        next_hop_v6_link_local: None,
        ipv4_via_ipv6: false,
    };
    let prefixes: Vec<IpNet> = (0..3000u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).expect("net")))
        .chain((0..600u128).map(|i| {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(0xfd00_0200_u128 << 96 | i), 128).expect("net"))
        }))
        .collect();
    let ups = build_announcements(&ctx, &RouteAttributes::default(), &prefixes).expect("build");
    assert!(ups.len() >= 5, "{} messages", ups.len());
    let mut seen = Vec::new();
    for u in ups {
        let b = encode(Message::Update(u)).expect("each fits 4096");
        assert!(b.len() <= MAX_MESSAGE_LEN);
        let d = decode_one(&b, true).expect("ok").expect("complete");
        seen.extend(update_of(&d).announced);
    }
    assert_eq!(seen, prefixes);
    let ws = build_withdrawals(&prefixes).expect("build");
    let mut seen = Vec::new();
    for w in ws {
        let b = encode(Message::Update(w)).expect("fits");
        seen.extend(update_of(&decode_one(&b, true).expect("ok").expect("complete")).withdrawn);
    }
    assert_eq!(seen, prefixes);
}

// ---------------------------------------------------------------------------------------------
// Property tests: everything we send decodes back to what we meant.

fn arb_v4() -> impl Strategy<Value = IpNet> {
    // Unicast space only (netgauze refuses multicast/broadcast NLRI, and so would routers).
    (0x0100_0000u32..0xdfff_ffff, 8u8..=32).prop_filter_map("unicast", |(a, l)| {
        let n = Ipv4Net::new(Ipv4Addr::from(a), l).ok()?.trunc();
        Ipv4Unicast::from_net(n).ok().map(|_| IpNet::V4(n))
    })
}

fn arb_v6() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 16u8..=128).prop_filter_map("unicast", |(a, l)| {
        let a = (a & !(0xffu128 << 120)) | (0xfdu128 << 120);
        let n = Ipv6Net::new(Ipv6Addr::from(a), l).ok()?.trunc();
        Ipv6Unicast::from_net(n).ok().map(|_| IpNet::V6(n))
    })
}

fn arb_community() -> impl Strategy<Value = CommunityValue> {
    prop_oneof![
        any::<u32>().prop_map(CommunityValue::Standard),
        (any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(a, b, c)| CommunityValue::Large(a, b, c)),
    ]
}

proptest! {
    #[test]
    fn open_round_trips(
        asn in any::<u32>(),
        hold in prop_oneof![Just(0u16), 3u16..],
        id in 0x0100_0000u32..0xe000_0000, // netgauze (rightly) refuses non-unicast identifiers
        ipv4 in any::<bool>(),
        ipv6 in any::<bool>(),
        gr in proptest::option::of((1u16..=MAX_RESTART_TIME, any::<bool>())),
        bfd_strict in any::<bool>(),
    ) {
        let graceful_restart = gr.map(|(restart_time, restarting)| GracefulRestart { restart_time, restarting });
        let cfg = OpenConfig { asn, hold_time: hold, router_id: Ipv4Addr::from(id), ipv4, ipv6, graceful_restart, bfd_strict };
        let bytes = encode(Message::Open(build_open(&cfg))).expect("encode");
        let d = decode_one(&bytes, false).expect("decode").expect("complete");
        let p = open_of(&d);
        prop_assert_eq!(p.asn, asn);
        prop_assert_eq!(p.my_as_field, u16::try_from(asn).unwrap_or(AS_TRANS));
        prop_assert_eq!(p.hold_time, hold);
        prop_assert_eq!(p.router_id, Ipv4Addr::from(id));
        prop_assert_eq!((p.mp_ipv4, p.mp_ipv6, p.graceful_restart), (ipv4, ipv6, gr.is_some()));
        prop_assert_eq!(p.graceful_notification, gr.is_some());
        prop_assert_eq!(p.restarting, gr.is_some_and(|(_, r)| r));
        prop_assert_eq!(p.bfd_strict, bfd_strict);
        prop_assert!(p.four_octet_as && p.route_refresh);
    }

    #[test]
    fn update_round_trips(
        v4 in proptest::collection::btree_set(arb_v4(), 0..300),
        v6 in proptest::collection::btree_set(arb_v6(), 0..200),
        mut communities in proptest::collection::vec(arb_community(), 0..80),
        local_pref in proptest::option::of(any::<u32>()),
        ebgp in any::<bool>(),
        four in any::<bool>(),
        asn in any::<u32>(),
        nh4 in any::<u32>(),
        nh6 in any::<u128>(),
        ll in proptest::option::of(any::<u64>()),
    ) {
        let ctx = UpdateContext {
            local_as: asn,
            ebgp,
            four_octet_as: four,
            next_hop_v4: Some(Ipv4Addr::from(nh4)),
            next_hop_v6: Some(Ipv6Addr::from(nh6)),
            next_hop_v6_link_local: ll.map(|l| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(l))),
            ipv4_via_ipv6: false,
        };
        // What the session hands over: communities sorted and unique, like desired.rs does.
        communities.sort();
        communities.dedup();
        let attrs = RouteAttributes { local_pref, communities: communities.clone() };
        let prefixes: Vec<IpNet> = v4.iter().chain(v6.iter()).copied().collect();
        let ups = build_announcements(&ctx, &attrs, &prefixes).expect("build");
        let mut announced = Vec::new();
        for u in ups {
            let bytes = encode(Message::Update(u)).expect("encode");
            prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
            let d = decode_one(&bytes, four).expect("decode").expect("complete");
            prop_assert_eq!(d.malformed_attributes, 0);
            let s = update_of(&d);
            prop_assert_eq!(s.origin, Some(0));
            let expected_path: Vec<u32> = match (ebgp, four) {
                (false, _) => vec![],
                (true, true) => vec![asn],
                (true, false) => vec![u32::from(u16::try_from(asn).unwrap_or(AS_TRANS))],
            };
            prop_assert_eq!(&s.as_path, &expected_path);
            prop_assert_eq!(s.local_pref, if ebgp { None } else { local_pref });
            let mut got = s.communities.clone();
            got.sort();
            prop_assert_eq!(&got, &communities);
            if s.announced.first().is_some_and(|p| p.addr().is_ipv4()) {
                prop_assert_eq!(s.next_hop, Some(IpAddr::V4(Ipv4Addr::from(nh4))));
            } else {
                prop_assert_eq!(s.next_hop, Some(IpAddr::V6(Ipv6Addr::from(nh6))));
                prop_assert_eq!(s.next_hop_link_local, ctx.next_hop_v6_link_local);
            }
            announced.extend(s.announced);
        }
        prop_assert_eq!(&announced, &prefixes);

        let mut withdrawn = Vec::new();
        for w in build_withdrawals(&prefixes).expect("build") {
            let bytes = encode(Message::Update(w)).expect("encode");
            let d = decode_one(&bytes, four).expect("decode").expect("complete");
            withdrawn.extend(update_of(&d).withdrawn);
        }
        prop_assert_eq!(&withdrawn, &prefixes);
    }

    #[test]
    fn notification_round_trips(code in any::<u8>(), subcode in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let n = Notification::new(code, subcode, data);
        let bytes = encode(Message::Notification(n.clone())).expect("encode");
        let d = decode_one(&bytes, true).expect("decode").expect("complete");
        prop_assert_eq!(d.message, Message::Notification(n));
    }

    #[test]
    fn route_refresh_round_trips(ipv6 in any::<bool>(), four in any::<bool>()) {
        let m = Message::RouteRefresh(route_refresh(ipv6));
        let bytes = encode(m.clone()).expect("encode");
        prop_assert_eq!(bytes.len(), 23);
        prop_assert_eq!(decode_one(&bytes, four).expect("decode").map(|d| d.message), Some(m));
    }

    #[test]
    fn keepalive_round_trips(four in any::<bool>()) {
        let bytes = encode(Message::KeepAlive).expect("encode");
        prop_assert_eq!(decode_one(&bytes, four).expect("decode").map(|d| d.message), Some(Message::KeepAlive));
    }

    /// Arbitrary bytes behind a valid header never panic the decoder and never loop.
    #[test]
    fn random_bodies_never_panic(t in 1u8..=5, body in proptest::collection::vec(any::<u8>(), 0..300), four in any::<bool>()) {
        let mut b = vec![0xff; 16];
        b.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        b.push(t);
        b.extend_from_slice(&body);
        let mut buf = BytesMut::from(&b[..]);
        let _ = decode(&mut buf, four);
    }

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_one(&b, true);
        let _ = decode_one(&b, false);
    }
}
