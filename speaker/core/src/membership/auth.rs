//! Datagram authentication: every gossip datagram carries an HMAC-SHA256 over its contents
//! with a key shared by all speakers (from a Secret). Datagrams that fail verification are
//! dropped before foca sees them, so a host without the key can neither join nor inject
//! membership updates.
//!
//! Wire format: `magic (4 bytes) | tag (32 bytes) | payload`, the tag computed over the magic and
//! the payload. The magic names the channel — `"FLB" 0x01` for foca's gossip, `"FLH" 0x01` for the
//! failure detector's heartbeats ([`super::heartbeat`]) — and its last byte is the format version,
//! so a future format can be told apart. Because the magic is under the tag, a datagram of one
//! channel cannot be replayed as the other. No confidentiality: membership updates (node names and
//! addresses) are not secret, only their origin matters. Replay of a captured datagram is not
//! prevented; SWIM's incarnation numbers make an old update lose against any newer one, so a replay
//! can at most repeat stale news for a moment (a replayed beat can at most end a presumption early;
//! heartbeat datagrams are only taken from members' addresses).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// First bytes of every gossip datagram.
pub const MAGIC: [u8; 4] = *b"FLB\x01";
/// First bytes of every heartbeat datagram.
pub const HEARTBEAT_MAGIC: [u8; 4] = *b"FLH\x01";
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Bytes added to each payload.
pub const OVERHEAD: usize = MAGIC.len() + TAG_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Why a datagram was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Shorter than magic and tag.
    #[error("datagram too short")]
    Truncated,
    /// Not our magic / version.
    #[error("unknown datagram format")]
    BadMagic,
    /// The tag does not match: wrong key or tampered datagram.
    #[error("authentication failed")]
    BadTag,
}

/// Which protocol a datagram belongs to (told by its magic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// foca's SWIM gossip.
    Gossip,
    /// The owner → successor heartbeats.
    Heartbeat,
}

impl Channel {
    fn magic(self) -> &'static [u8; 4] {
        match self {
            Channel::Gossip => &MAGIC,
            Channel::Heartbeat => &HEARTBEAT_MAGIC,
        }
    }
}

/// Seals and opens datagrams with one shared key.
#[derive(Clone)]
pub struct Authenticator {
    mac: HmacSha256,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("Authenticator(..)")
    }
}

impl Authenticator {
    /// An authenticator for `key`; `None` for an empty key (which would authenticate nothing).
    pub fn new(key: &[u8]) -> Option<Self> {
        if key.is_empty() {
            return None;
        }
        // HMAC accepts keys of any length; the error case cannot happen but is not unwrapped.
        HmacSha256::new_from_slice(key)
            .ok()
            .map(|mac| Authenticator { mac })
    }

    fn tag(&self, magic: &[u8], payload: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(magic);
        mac.update(payload);
        mac
    }

    /// The gossip datagram carrying `payload`.
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        self.seal_on(Channel::Gossip, payload)
    }

    /// The datagram of `channel` carrying `payload`.
    pub fn seal_on(&self, channel: Channel, payload: &[u8]) -> Vec<u8> {
        let magic = channel.magic();
        let tag = self.tag(magic, payload).finalize().into_bytes();
        let mut out = Vec::with_capacity(OVERHEAD + payload.len());
        out.extend_from_slice(magic);
        out.extend_from_slice(&tag);
        out.extend_from_slice(payload);
        out
    }

    /// The payload of a gossip datagram whose tag verifies (compared in constant time).
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], AuthError> {
        match self.open_any(datagram)? {
            (Channel::Gossip, payload) => Ok(payload),
            (Channel::Heartbeat, _) => Err(AuthError::BadMagic),
        }
    }

    /// The channel and payload of a datagram of either channel whose tag verifies.
    pub fn open_any<'a>(&self, datagram: &'a [u8]) -> Result<(Channel, &'a [u8]), AuthError> {
        let magic = datagram.get(..MAGIC.len()).ok_or(AuthError::Truncated)?;
        let tag = datagram
            .get(MAGIC.len()..OVERHEAD)
            .ok_or(AuthError::Truncated)?;
        let channel = [Channel::Gossip, Channel::Heartbeat]
            .into_iter()
            .find(|c| c.magic()[..] == *magic)
            .ok_or(AuthError::BadMagic)?;
        let payload = datagram.get(OVERHEAD..).ok_or(AuthError::Truncated)?;
        self.tag(magic, payload)
            .verify_slice(tag)
            .map_err(|_| AuthError::BadTag)?;
        Ok((channel, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_rejections() {
        let a = Authenticator::new(b"k1").expect("key");
        let sealed = a.seal(b"hello");
        assert_eq!(sealed.len(), OVERHEAD + 5);
        assert_eq!(&sealed[..4], b"FLB\x01");
        assert_eq!(a.open(&sealed), Ok(&b"hello"[..]));
        // Another key.
        let b = Authenticator::new(b"k2").expect("key");
        assert_eq!(b.open(&sealed), Err(AuthError::BadTag));
        // Any flipped bit.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(a.open(&bad).is_err(), "bit flip at {i}");
        }
        assert_eq!(a.open(&sealed[..10]), Err(AuthError::Truncated));
        assert_eq!(a.open(&sealed[..OVERHEAD]), Err(AuthError::BadTag));
        let mut other = sealed.clone();
        other[3] = 2;
        assert_eq!(a.open(&other), Err(AuthError::BadMagic));
        assert!(Authenticator::new(b"").is_none());
        assert_eq!(format!("{a:?}"), "Authenticator(..)");
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256(key "key", "FLB\x01" + "payload"), computed independently with Python's
        // hmac module.
        let a = Authenticator::new(b"key").expect("key");
        let sealed = a.seal(b"payload");
        let hex: String = sealed[4..OVERHEAD]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, KNOWN_TAG);
    }

    #[test]
    fn channels_are_told_apart_and_not_interchangeable() {
        let a = Authenticator::new(b"k").expect("key");
        let beat = a.seal_on(Channel::Heartbeat, b"x");
        assert_eq!(&beat[..4], b"FLH\x01");
        assert_eq!(a.open_any(&beat), Ok((Channel::Heartbeat, &b"x"[..])));
        assert_eq!(a.open(&beat), Err(AuthError::BadMagic));
        let gossip = a.seal(b"x");
        assert_eq!(a.open_any(&gossip), Ok((Channel::Gossip, &b"x"[..])));
        // The magic is under the tag: relabelling a heartbeat as gossip breaks it.
        let mut relabelled = beat.clone();
        relabelled[..4].copy_from_slice(&MAGIC);
        assert_eq!(a.open_any(&relabelled), Err(AuthError::BadTag));
    }

    const KNOWN_TAG: &str = "b641fc4c4c1722fce8d102d67cfabdc43385cc5af908064bc3178347bc22991d";

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let a = Authenticator::new(b"k").expect("key");
            let _ = a.open(&bytes);
        }

        #[test]
        fn seal_open_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let a = Authenticator::new(b"secret").expect("key");
            let sealed = a.seal(&payload);
            prop_assert_eq!(a.open(&sealed), Ok(&payload[..]));
        }
    }
}
