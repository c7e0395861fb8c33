use super::*;
use proptest::prelude::*;

/// Built by hand from the RFC 5880 §4.1 layout: version 1, diag 0, state Down, no flags,
/// detect mult 3, length 24, my discr 0x12345678, your discr 0, desired min TX 1 s,
/// required min RX 50 ms, no echo.
const GOLDEN_DOWN: [u8; 24] = [
    0x20, 0x40, 0x03, 0x18, //
    0x12, 0x34, 0x56, 0x78, //
    0x00, 0x00, 0x00, 0x00, //
    0x00, 0x0f, 0x42, 0x40, //
    0x00, 0x00, 0xc3, 0x50, //
    0x00, 0x00, 0x00, 0x00,
];

fn golden_down() -> ControlPacket {
    ControlPacket {
        diag: Diagnostic::NoDiagnostic,
        state: BfdState::Down,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discr: 0x1234_5678,
        your_discr: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 50_000,
        required_min_echo_rx_us: 0,
    }
}

#[test]
fn golden_down_packet_encodes_and_decodes() {
    assert_eq!(golden_down().encode(), GOLDEN_DOWN);
    assert_eq!(ControlPacket::decode(&GOLDEN_DOWN), Ok(golden_down()));
}

#[test]
fn golden_up_with_poll_and_diag() {
    // Version 1 / diag 1 (0x21); state Up, P set (0b11_1_0_0_0_0_0 = 0xe0); the remaining
    // flags: F in bit 4, C in bit 3, D in bit 1.
    let mut p = golden_down();
    p.diag = Diagnostic::ControlDetectionTimeExpired;
    p.state = BfdState::Up;
    p.poll = true;
    p.your_discr = 0xdead_beef;
    let b = p.encode();
    assert_eq!(&b[..4], &[0x21, 0xe0, 0x03, 0x18]);
    assert_eq!(&b[8..12], &[0xde, 0xad, 0xbe, 0xef]);
    p.poll = false;
    p.final_ = true;
    p.cpi = true;
    p.demand = true;
    assert_eq!(p.encode()[1], 0b1101_1010);
    assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
}

fn with(mut b: [u8; 24], f: impl FnOnce(&mut [u8; 24])) -> [u8; 24] {
    f(&mut b);
    b
}

#[test]
fn rejects_short_packets() {
    assert_eq!(
        ControlPacket::decode(&GOLDEN_DOWN[..23]),
        Err(DecodeError::TooShort { got: 23, need: 24 })
    );
    assert_eq!(
        ControlPacket::decode(&[]),
        Err(DecodeError::TooShort { got: 0, need: 24 })
    );
    // Length field below 24.
    let b = with(GOLDEN_DOWN, |b| b[3] = 23);
    assert_eq!(
        ControlPacket::decode(&b),
        Err(DecodeError::TooShort { got: 23, need: 24 })
    );
}

#[test]
fn rejects_other_versions() {
    for v in [0u8, 2, 7] {
        let b = with(GOLDEN_DOWN, |b| b[0] = v << 5);
        assert_eq!(ControlPacket::decode(&b), Err(DecodeError::Version(v)));
    }
}

#[test]
fn rejects_length_beyond_payload_and_accepts_trailing_bytes() {
    let b = with(GOLDEN_DOWN, |b| b[3] = 25);
    assert_eq!(
        ControlPacket::decode(&b),
        Err(DecodeError::LengthExceedsPayload {
            field: 25,
            payload: 24
        })
    );
    // The Length field rules: bytes after it (padding by the link layer) do not matter.
    let mut long = GOLDEN_DOWN.to_vec();
    long.extend_from_slice(&[0xff; 8]);
    assert_eq!(ControlPacket::decode(&long), Ok(golden_down()));
}

#[test]
fn rejects_zero_multiplier_multipoint_and_zero_my_discriminator() {
    let b = with(GOLDEN_DOWN, |b| b[2] = 0);
    assert_eq!(ControlPacket::decode(&b), Err(DecodeError::ZeroDetectMult));
    let b = with(GOLDEN_DOWN, |b| b[1] |= 1);
    assert_eq!(ControlPacket::decode(&b), Err(DecodeError::Multipoint));
    let b = with(GOLDEN_DOWN, |b| b[4..8].fill(0));
    assert_eq!(
        ControlPacket::decode(&b),
        Err(DecodeError::ZeroMyDiscriminator)
    );
}

#[test]
fn your_discriminator_zero_only_in_down_or_admin_down() {
    for (bits, state) in [(2u8, BfdState::Init), (3, BfdState::Up)] {
        let b = with(GOLDEN_DOWN, |b| b[1] = bits << 6);
        assert_eq!(
            ControlPacket::decode(&b),
            Err(DecodeError::ZeroYourDiscriminator(state))
        );
    }
    let b = with(GOLDEN_DOWN, |b| b[1] = 0);
    assert_eq!(
        ControlPacket::decode(&b).map(|p| p.state),
        Ok(BfdState::AdminDown)
    );
}

#[test]
fn authenticated_packets_are_discarded() {
    // Simple password auth (type 1), auth len 3+4 = 7 ("abcd", key id 1): length 31.
    let mut b = with(GOLDEN_DOWN, |b| {
        b[1] |= 0b100;
        b[3] = 31;
    })
    .to_vec();
    b.extend_from_slice(&[1, 7, 1, b'a', b'b', b'c', b'd']);
    assert_eq!(
        ControlPacket::decode(&b),
        Err(DecodeError::Authenticated { auth_type: 1 })
    );
    // Auth Len inconsistent with Length.
    b[25] = 9;
    assert_eq!(
        ControlPacket::decode(&b),
        Err(DecodeError::MalformedAuth {
            auth_len: 9,
            length: 31
        })
    );
    // A bit with a Length of 24: too short for the section.
    let b = with(GOLDEN_DOWN, |b| b[1] |= 0b100);
    assert_eq!(
        ControlPacket::decode(&b),
        Err(DecodeError::TooShort { got: 24, need: 26 })
    );
}

#[test]
fn diagnostics_and_states_round_trip_through_bits() {
    for v in 0u8..32 {
        assert_eq!(Diagnostic::from_bits(v).bits(), v);
    }
    for v in 0u8..4 {
        assert_eq!(BfdState::from_bits(v).bits(), v);
    }
    assert_eq!(Diagnostic::from_bits(9), Diagnostic::Reserved(9));
    assert_eq!(BfdState::Up.to_string(), "Up");
    assert_eq!(BfdState::AdminDown.to_string(), "AdminDown");
}

fn arb_state() -> impl Strategy<Value = BfdState> {
    prop_oneof![
        Just(BfdState::AdminDown),
        Just(BfdState::Down),
        Just(BfdState::Init),
        Just(BfdState::Up)
    ]
}

fn arb_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32, arb_state(), any::<[bool; 4]>(), 1u8..=255),
        (1u32.., 1u32.., any::<u32>(), any::<u32>(), any::<u32>()),
        any::<bool>(),
    )
        .prop_map(
            |((diag, state, flags, mult), (my, your, tx, rx, echo), zero_your)| {
                // Your Discriminator may be zero only in Down / AdminDown.
                let your = if zero_your && matches!(state, BfdState::Down | BfdState::AdminDown) {
                    0
                } else {
                    your
                };
                ControlPacket {
                    diag: Diagnostic::from_bits(diag),
                    state,
                    poll: flags[0],
                    final_: flags[1],
                    cpi: flags[2],
                    demand: flags[3],
                    detect_mult: mult,
                    my_discr: my,
                    your_discr: your,
                    desired_min_tx_us: tx,
                    required_min_rx_us: rx,
                    required_min_echo_rx_us: echo,
                }
            },
        )
}

proptest! {
    #[test]
    fn encode_decode_round_trip(p in arb_packet()) {
        prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn decode_never_panics_and_accepted_packets_re_encode(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(p) = ControlPacket::decode(&data) {
            // Everything but the Length byte (which may exceed 24) re-encodes identically.
            let enc = p.encode();
            prop_assert_eq!(&enc[..3], &data[..3]);
            prop_assert_eq!(&enc[4..], &data[4..24]);
        }
    }
}

/// BIRD 2.0.12's first packet of a session configured with `min rx interval 50 ms; min tx
/// interval 50 ms; multiplier 3`, captured in a lab namespace (UDP 52476 → 3784): Down, slow
/// 1 s transmit interval while not Up (RFC 5880 §6.8.3), 50 ms receive interval.
const BIRD_FIRST_PACKET: &str = "204003183514892000000000000f42400000c35000000000";

#[test]
fn decodes_a_captured_bird_packet_and_re_encodes_it_identically() {
    let bytes: Vec<u8> = (0..BIRD_FIRST_PACKET.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&BIRD_FIRST_PACKET[i..i + 2], 16).expect("hex"))
        .collect();
    let p = ControlPacket::decode(&bytes).expect("BIRD's packet is valid");
    let mut expected = golden_down();
    expected.my_discr = 0x3514_8920;
    assert_eq!(p, expected);
    assert_eq!(p.encode().as_slice(), bytes.as_slice());
}
