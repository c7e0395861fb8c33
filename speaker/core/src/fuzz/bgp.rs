//! The `bgp_decode` target: the BGP wire decoder on arbitrary byte streams.

use crate::bgp::codec::{CodecError, decode, encode};
use bytes::BytesMut;

/// Decodes `data` (after its first byte) as a TCP stream from a peer, message after message,
/// with the AS_PATH width the first byte's low bit selects. Invariants: no panic; every call
/// either consumes a whole message, asks for more bytes without consuming, or fails with a
/// NOTIFICATION code RFC 4271 defines for input errors (1, 2, 3, 5 or 7); everything decoded
/// re-encodes without panicking.
pub fn bgp_decode(data: &[u8]) {
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
}
