//! Framing: one BGP message off a byte stream, or one onto it.
//!
//! The header is checked before any parsing (marker, length 19..=4096, type, per-type minimum
//! length), so every framing error maps to the RFC 4271 §6.1 NOTIFICATION (1/1, 1/2, 1/3).
//! netgauze parses and writes OPEN, UPDATE, KEEPALIVE and ROUTE-REFRESH; NOTIFICATION is
//! read and written here, raw.
//!
//! RFC 7606: attributes of a wrong length for their type are taken out before parsing
//! ([`super::rfc7606`]), other malformed optional attributes are skipped by netgauze (we
//! configure it not to fail on them); both are reported as "treat-as-withdraw"; since this speaker
//! imports nothing, treat-as-withdraw amounts to counting and logging. Errors that break the
//! framing of the message (attribute list overflowing, bad NLRI length) still reset the
//! session with the UPDATE error RFC 4271 §6.3 prescribes.

use super::header::{
    HEADER_LEN, MAX_MESSAGE_LEN, TYPE_KEEPALIVE, TYPE_NOTIFICATION, TYPE_OPEN, TYPE_ROUTE_REFRESH,
    TYPE_UPDATE,
};
use super::notification::{Notification, code, notification_from_netgauze, subcode};
use super::rfc7606::without_malformed_attributes;
use bytes::{BufMut, BytesMut};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::open::BgpOpenMessage;
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use std::collections::HashMap;

/// A BGP message as this speaker sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// OPEN.
    Open(BgpOpenMessage),
    /// UPDATE.
    Update(BgpUpdateMessage),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    KeepAlive,
    /// ROUTE-REFRESH.
    RouteRefresh(BgpRouteRefreshMessage),
}

impl Message {
    /// Short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "OPEN",
            Message::Update(_) => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::KeepAlive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        }
    }
}

/// A decoded message plus what RFC 7606 made us skip in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// Malformed path attributes skipped (treat-as-withdraw / attribute-discard).
    pub malformed_attributes: usize,
    /// Malformed capabilities skipped in an OPEN.
    pub malformed_capabilities: usize,
}

/// Codec errors.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something malformed; `notification` is what RFC 4271 says to send back.
    #[error("malformed {kind} from peer: {reason} (answering {notification})")]
    Malformed {
        /// Message type, as far as known.
        kind: &'static str,
        /// What was wrong.
        reason: String,
        /// The NOTIFICATION to send.
        notification: Notification,
    },
    /// We built a message that cannot be encoded (a bug, or attributes too large).
    #[error("cannot encode {kind}: {reason}")]
    Encode {
        /// Message type.
        kind: &'static str,
        /// Why.
        reason: String,
    },
}

fn parsing_context(four_octet_as: bool) -> BgpParsingContext {
    // Do not fail on non-unicast NLRI, malformed capabilities or malformed optional
    // attributes: RFC 4271 says to ignore bad prefixes, RFC 5492 to ignore unknown
    // capabilities, RFC 7606 to treat-as-withdraw rather than reset the session.
    BgpParsingContext::new(
        four_octet_as,
        HashMap::new(),
        HashMap::new(),
        false,
        false,
        false,
        false,
    )
}

fn header_error(kind: &'static str, subcode: u8, data: Vec<u8>, reason: String) -> CodecError {
    CodecError::Malformed {
        kind,
        reason,
        notification: Notification::new(code::MESSAGE_HEADER, subcode, data),
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        TYPE_OPEN => "OPEN",
        TYPE_UPDATE => "UPDATE",
        TYPE_NOTIFICATION => "NOTIFICATION",
        TYPE_KEEPALIVE => "KEEPALIVE",
        TYPE_ROUTE_REFRESH => "ROUTE-REFRESH",
        _ => "message",
    }
}

/// Takes one message off the front of `buf`, reading AS numbers in AS_PATH as 4 octets when
/// `four_octet_as` (both sides announced the capability; before OPEN negotiation, 2 octets).
///
/// `Ok(None)`: the message has not fully arrived; `buf` is left as it is, with room reserved
/// for the rest. An error carries the NOTIFICATION RFC 4271 prescribes; the stream cannot be
/// resynchronised after it.
pub fn decode(buf: &mut BytesMut, four_octet_as: bool) -> Result<Option<Decoded>, CodecError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    // RFC 4271 §6.1: marker all ones, else Connection Not Synchronized (1/1).
    if buf[..16].iter().any(|b| *b != 0xff) {
        return Err(header_error(
            "message",
            subcode::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
            "marker is not all ones".into(),
        ));
    }
    let length = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    let msg_type = buf[18];
    // Bad Message Length (1/2) carries the erroneous length field as data.
    let bad_len = |why: &str| {
        header_error(
            type_name(msg_type),
            subcode::BAD_MESSAGE_LENGTH,
            (length as u16).to_be_bytes().to_vec(),
            format!("length {length}: {why}"),
        )
    };
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&length) {
        return Err(bad_len("outside 19..=4096"));
    }
    let min_ok = match msg_type {
        TYPE_OPEN => length >= 29,
        TYPE_UPDATE => length >= 23,
        TYPE_NOTIFICATION => length >= 21,
        TYPE_KEEPALIVE => length == 19,
        // RFC 2918: a ROUTE-REFRESH is exactly AFI(2) + reserved(1) + SAFI(1).
        TYPE_ROUTE_REFRESH => length == 23,
        other => {
            return Err(header_error(
                "message",
                subcode::BAD_MESSAGE_TYPE,
                vec![other],
                format!("unknown message type {other}"),
            ));
        }
    };
    if !min_ok {
        return Err(bad_len("too short or too long for its type"));
    }
    if buf.len() < length {
        buf.reserve(length - buf.len());
        return Ok(None);
    }
    let frame = buf.split_to(length);

    if msg_type == TYPE_NOTIFICATION {
        let message = Message::Notification(Notification::new(
            frame[19],
            frame[20],
            frame[21..].to_vec(),
        ));
        return Ok(Some(Decoded {
            message,
            malformed_attributes: 0,
            malformed_capabilities: 0,
        }));
    }

    // RFC 7606: attributes of a wrong length for their type go before parsing (see rfc7606.rs).
    let (frame, dropped) = match msg_type {
        TYPE_UPDATE => match without_malformed_attributes(&frame, four_octet_as) {
            Some((kept, dropped)) => (BytesMut::from(&kept[..]), dropped),
            None => (frame, 0),
        },
        _ => (frame, 0),
    };
    let mut ctx = parsing_context(four_octet_as);
    let mut reader = SliceReader::new(&frame[..]);
    match BgpMessage::parse(&mut reader, &mut ctx) {
        Ok(msg) => {
            let ignored = ctx.reset_parsing_errors();
            let message = match msg {
                BgpMessage::Open(o) => Message::Open(o),
                BgpMessage::Update(u) => Message::Update(u),
                BgpMessage::KeepAlive => Message::KeepAlive,
                BgpMessage::RouteRefresh(r) => Message::RouteRefresh(r),
                // Unreachable in practice (we intercept type 3), but map it rather than
                // panic on peer input.
                BgpMessage::Notification(n) => {
                    Message::Notification(notification_from_netgauze(&n))
                }
            };
            Ok(Some(Decoded {
                message,
                malformed_attributes: ignored.path_attr_errors().len() + dropped,
                malformed_capabilities: ignored.capability_errors().len(),
            }))
        }
        Err(e) => {
            let notification = notification_from_netgauze(&BgpNotificationMessage::from(e.clone()));
            Err(CodecError::Malformed {
                kind: type_name(msg_type),
                reason: e.to_string(),
                notification,
            })
        }
    }
}

/// Appends one message to `dst`. On error nothing is appended.
pub fn encode_into(msg: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
    let kind = msg.kind();
    let start = dst.len();
    match msg {
        Message::Notification(n) => dst.put_slice(&n.to_bytes()),
        other => {
            let m = match other {
                Message::Open(o) => BgpMessage::Open(o),
                Message::Update(u) => BgpMessage::Update(u),
                Message::KeepAlive => BgpMessage::KeepAlive,
                Message::RouteRefresh(r) => BgpMessage::RouteRefresh(r),
                Message::Notification(_) => unreachable!("handled above"),
            };
            if let Err(e) = m.write(&mut dst.writer()) {
                dst.truncate(start);
                return Err(CodecError::Encode {
                    kind,
                    reason: e.to_string(),
                });
            }
        }
    }
    let written = dst.len() - start;
    if written > MAX_MESSAGE_LEN {
        // We never announced extended messages: a larger message would be rejected.
        dst.truncate(start);
        return Err(CodecError::Encode {
            kind,
            reason: format!("{written} octets exceed {MAX_MESSAGE_LEN}"),
        });
    }
    Ok(())
}

/// Encodes one message to bytes (tests, fuzzing, golden comparisons).
pub fn encode(msg: Message) -> Result<Vec<u8>, CodecError> {
    let mut buf = BytesMut::new();
    encode_into(msg, &mut buf)?;
    Ok(buf.to_vec())
}

/// Decodes exactly one message from bytes with the given AS_PATH width.
pub fn decode_one(bytes: &[u8], four_octet_as: bool) -> Result<Option<Decoded>, CodecError> {
    let mut buf = BytesMut::from(bytes);
    decode(&mut buf, four_octet_as)
}
