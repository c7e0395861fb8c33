//! A hostile BGP peer: a flood of UPDATEs, and UPDATEs with malformed attributes. RFC 7606
//! decides which errors are "treat-as-withdraw" (the UPDATE decodes; its routes would be
//! withdrawn — this speaker imports none, so it counts them) and which still reset the session
//! (the message cannot be parsed far enough to find its routes).

use bytes::BytesMut;
use ferrolb_speaker_core::bgp::codec::{CodecError, Decoded, Message, decode, decode_one};

const ORIGIN_IGP: &[u8] = &[0x40, 0x01, 0x01, 0x00];
/// AS_SEQUENCE of AS 65001, 4-octet AS numbers.
const AS_PATH: &[u8] = &[0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfd, 0xe9];
const NEXT_HOP: &[u8] = &[0x40, 0x03, 0x04, 10, 200, 0, 1];
/// 10.200.0.10/32.
const NLRI: &[u8] = &[32, 10, 200, 0, 10];

/// An UPDATE with no withdrawn routes, `attributes` and [`NLRI`].
fn update(attributes: &[&[u8]]) -> Vec<u8> {
    let attrs: Vec<u8> = attributes.concat();
    let mut body = vec![0, 0];
    body.extend_from_slice(&u16::try_from(attrs.len()).expect("short").to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(NLRI);
    let mut msg = vec![0xff; 16];
    msg.extend_from_slice(&u16::try_from(19 + body.len()).expect("short").to_be_bytes());
    msg.push(2);
    msg.extend_from_slice(&body);
    msg
}

fn decoded(bytes: &[u8]) -> Decoded {
    match decode_one(bytes, true) {
        Ok(Some(d)) => d,
        other => panic!("expected a decoded UPDATE, got {other:?}"),
    }
}

/// (code, subcode) of the NOTIFICATION a session reset sends.
fn reset(bytes: &[u8]) -> (u8, u8) {
    match decode_one(bytes, true) {
        Err(CodecError::Malformed { notification, .. }) => {
            (notification.code, notification.subcode)
        }
        other => panic!("expected a session reset, got {other:?}"),
    }
}

#[test]
fn a_well_formed_update_has_nothing_to_withdraw() {
    let d = decoded(&update(&[ORIGIN_IGP, AS_PATH, NEXT_HOP]));
    assert!(matches!(d.message, Message::Update(_)));
    assert_eq!(d.malformed_attributes, 0);
}

#[test]
fn malformed_attributes_are_treat_as_withdraw_not_a_reset() {
    let cases: [(&str, &[u8]); 7] = [
        // RFC 7606 §7.8: COMMUNITIES length not a multiple of 4.
        (
            "COMMUNITIES of 3 octets",
            &[0xc0, 0x08, 0x03, 0xfc, 0x00, 0x00],
        ),
        // RFC 8092 §6: LARGE_COMMUNITIES length not a multiple of 12.
        (
            "LARGE_COMMUNITIES of 11 octets",
            &[0xc0, 0x20, 0x0b, 0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0],
        ),
        // RFC 7606 §7.5: LOCAL_PREF length other than 4.
        ("LOCAL_PREF of 2 octets", &[0x40, 0x05, 0x02, 0x00, 0x64]),
        // RFC 7606 §7.1: ORIGIN with an undefined value.
        ("ORIGIN 7", &[0x40, 0x01, 0x01, 0x07]),
        // RFC 7606 §7.6: ATOMIC_AGGREGATE length other than 0 is attribute discard.
        ("ATOMIC_AGGREGATE of 1 octet", &[0x40, 0x06, 0x01, 0x00]),
        // RFC 7606 §7.1: ORIGIN length other than 1.
        ("ORIGIN of 2 octets", &[0x40, 0x01, 0x02, 0x00, 0x00]),
        // RFC 7606 §7.3: NEXT_HOP length other than 4.
        ("NEXT_HOP of 3 octets", &[0x40, 0x03, 0x03, 10, 200, 0]),
    ];
    for (what, bad) in cases {
        // The malformed attribute takes the place of the well-formed one of its type.
        let attributes: Vec<&[u8]> = [ORIGIN_IGP, AS_PATH, NEXT_HOP]
            .into_iter()
            .filter(|a| a[1] != bad[1])
            .chain([bad])
            .collect();
        let d = decoded(&update(&attributes));
        assert!(matches!(d.message, Message::Update(_)), "{what}");
        assert!(d.malformed_attributes >= 1, "{what}: {d:?}");
    }
}

#[test]
fn lengths_past_the_message_reset_the_session_with_an_update_error() {
    // RFC 7606 §4: when the Total Path Attribute Length overruns the message the NLRI cannot be
    // located, so the session is reset (UPDATE Message Error / Malformed Attribute List).
    let mut bad = update(&[ORIGIN_IGP, AS_PATH, NEXT_HOP]);
    let too_long = u16::from_be_bytes([bad[21], bad[22]]) + 40;
    bad[21..23].copy_from_slice(&too_long.to_be_bytes());
    assert_eq!(reset(&bad), (3, 1));
    // The same for a Withdrawn Routes Length past the end.
    let mut bad = update(&[ORIGIN_IGP, AS_PATH, NEXT_HOP]);
    bad[19..21].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(reset(&bad), (3, 1));
}

#[test]
fn a_flood_of_updates_is_taken_one_message_at_a_time_keeping_nothing() {
    let one = update(&[ORIGIN_IGP, AS_PATH, NEXT_HOP]);
    let count = 100_000;
    let mut stream = BytesMut::with_capacity(one.len() * count);
    for _ in 0..count {
        stream.extend_from_slice(&one);
    }
    let mut seen = 0;
    loop {
        let before = stream.len();
        match decode(&mut stream, true) {
            Ok(Some(d)) => {
                assert!(matches!(d.message, Message::Update(_)));
                // Each call takes exactly one message off the stream, nothing more is held.
                assert_eq!(stream.len(), before - one.len());
                seen += 1;
            }
            Ok(None) => break,
            Err(e) => panic!("message {seen}: {e}"),
        }
    }
    assert_eq!(seen, count);
    assert!(stream.is_empty());
}
