//! Fuzzes the BGP wire decoder (`ferrolb_speaker_core::bgp::codec::decode`) on arbitrary
//! byte streams, with both AS_PATH widths. Invariants: no panic, every call either consumes a whole
//! message, asks for more bytes without consuming, or returns an error carrying a NOTIFICATION
//! code RFC 4271 defines (1, 2, 3 or 7 for input errors); everything decoded can be re-encoded
//! without panicking.
//!
//! Run: `cargo +nightly fuzz run bgp_decode -- -max_total_time=600` from the repository root.
#![no_main]

use bytes::BytesMut;
use ferrolb_speaker_core::bgp::codec::{CodecError, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte selects the negotiated AS width, the rest is the TCP stream.
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let four_octet_as = flags & 1 == 1;
    let mut buf = BytesMut::from(stream);
    loop {
        let before = buf.len();
        match decode(&mut buf, four_octet_as) {
            Ok(Some(decoded)) => {
                assert!(buf.len() < before, "a decoded message must consume bytes");
                let _ = encode(decoded.message);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "waiting for more must not consume");
                break;
            }
            Err(CodecError::Malformed { notification, .. }) => {
                assert!(
                    matches!(notification.code, 1 | 2 | 3 | 5 | 7),
                    "unexpected NOTIFICATION code for input error: {notification}"
                );
                break;
            }
            Err(e) => panic!("decoder returned a non-input error: {e}"),
        }
    }
});
