//! The BGP wire codec: a thin layer over `netgauze-bgp-pkt`.
//!
//! netgauze parses and writes OPEN, UPDATE, KEEPALIVE and ROUTE-REFRESH. This module adds what a
//! speaker needs around it:
//! - header checks before any parsing (marker, length 19..=4096, type, per-type minimum length)
//!   so every framing error maps to the RFC 4271 §6.1 NOTIFICATION (1/1, 1/2, 1/3);
//! - NOTIFICATION as raw code/subcode/data, because netgauze refuses codes it does not know and
//!   a peer may send any (RFC 4271 says the receiver must not answer a NOTIFICATION with one);
//! - builders for the messages we send (OPEN with our capabilities, UPDATEs with the attributes
//!   an LB speaker uses, withdrawals), batched to fit 4096 octets;
//! - a summary of received UPDATEs (used by tests and for logging, we keep no Adj-RIB-In).
//!
//! RFC 7606: malformed optional attributes in a received UPDATE are skipped by netgauze (we
//! configure it not to fail on them) and reported as "treat-as-withdraw"; since this speaker
//! imports nothing, treat-as-withdraw amounts to counting and logging. Errors that break the
//! framing of the message (attribute list overflowing, bad NLRI length) still reset the
//! session with the UPDATE error RFC 4271 §6.3 prescribes.

use crate::bgp::RouteAttributes;
use bytes::{BufMut, BytesMut};
use ferrolb_config::CommunityValue;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::community::{Community, LargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::notification::{
    BgpNotificationMessage, CeaseError, FiniteStateMachineError, HoldTimerExpiredError,
    MessageHeaderError, OpenMessageError, RouteRefreshError, UpdateMessageError,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4PathSegment, AsPath, AsPathSegmentType, Communities, LargeCommunities,
    LocalPreference, MpReach, MpUnreach, NextHop, Origin, PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// AS_TRANS (RFC 6793): put in the 2-octet "My AS" field when our AS does not fit.
pub const AS_TRANS: u16 = 23456;
/// Largest BGP message without the extended-message capability (which we do not announce).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Header length: marker, length, type.
pub const HEADER_LEN: usize = 19;

const TYPE_OPEN: u8 = 1;
const TYPE_UPDATE: u8 = 2;
const TYPE_NOTIFICATION: u8 = 3;
const TYPE_KEEPALIVE: u8 = 4;
const TYPE_ROUTE_REFRESH: u8 = 5;

/// A NOTIFICATION message, kept raw so unknown codes survive decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data (meaning depends on code/subcode).
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// Cease / Administrative Shutdown (6/2): sent on clean shutdown so the router withdraws
    /// our routes at once instead of waiting for the hold timer.
    pub fn cease_admin_shutdown() -> Self {
        Notification::new(6, 2, Vec::new())
    }

    /// Cease / Peer De-configured (6/3).
    pub fn cease_deconfigured() -> Self {
        Notification::new(6, 3, Vec::new())
    }

    /// Cease / Other Configuration Change (6/6).
    pub fn cease_config_change() -> Self {
        Notification::new(6, 6, Vec::new())
    }

    /// Cease / BFD Down (6/10, RFC 9384).
    pub fn cease_bfd_down() -> Self {
        Notification::new(6, 10, Vec::new())
    }

    /// Hold Timer Expired (4/0).
    pub fn hold_timer_expired() -> Self {
        Notification::new(4, 0, Vec::new())
    }

    /// Finite State Machine Error (5/x): an unexpected message in a state.
    pub fn fsm_error(subcode: u8) -> Self {
        Notification::new(5, subcode, Vec::new())
    }

    /// Name of the error code.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            1 => "Message Header Error",
            2 => "OPEN Message Error",
            3 => "UPDATE Message Error",
            4 => "Hold Timer Expired",
            5 => "Finite State Machine Error",
            6 => "Cease",
            7 => "ROUTE-REFRESH Message Error",
            _ => "Unknown error code",
        }
    }

    /// Name of the subcode, when the code defines it.
    pub fn subcode_name(&self) -> Option<&'static str> {
        let name = match (self.code, self.subcode) {
            (1, 1) => "Connection Not Synchronized",
            (1, 2) => "Bad Message Length",
            (1, 3) => "Bad Message Type",
            (2, 1) => "Unsupported Version Number",
            (2, 2) => "Bad Peer AS",
            (2, 3) => "Bad BGP Identifier",
            (2, 4) => "Unsupported Optional Parameter",
            (2, 6) => "Unacceptable Hold Time",
            (2, 7) => "Unsupported Capability",
            (2, 11) => "Role Mismatch",
            (3, 1) => "Malformed Attribute List",
            (3, 2) => "Unrecognized Well-known Attribute",
            (3, 3) => "Missing Well-known Attribute",
            (3, 4) => "Attribute Flags Error",
            (3, 5) => "Attribute Length Error",
            (3, 6) => "Invalid ORIGIN Attribute",
            (3, 8) => "Invalid NEXT_HOP Attribute",
            (3, 9) => "Optional Attribute Error",
            (3, 10) => "Invalid Network Field",
            (3, 11) => "Malformed AS_PATH",
            (5, 1) => "Unexpected Message in OpenSent",
            (5, 2) => "Unexpected Message in OpenConfirm",
            (5, 3) => "Unexpected Message in Established",
            (6, 1) => "Maximum Number of Prefixes Reached",
            (6, 2) => "Administrative Shutdown",
            (6, 3) => "Peer De-configured",
            (6, 4) => "Administrative Reset",
            (6, 5) => "Connection Rejected",
            (6, 6) => "Other Configuration Change",
            (6, 7) => "Connection Collision Resolution",
            (6, 8) => "Out of Resources",
            (6, 9) => "Hard Reset",
            (6, 10) => "BFD Down",
            (7, 1) => "Invalid Message Length",
            (_, 0) => "Unspecific",
            _ => return None,
        };
        Some(name)
    }

    /// Encodes the whole message (header included).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 2 + self.data.len());
        out.extend_from_slice(&[0xff; 16]);
        // Data is truncated so the message never exceeds the maximum; a longer diagnostic
        // would make the whole NOTIFICATION invalid.
        let data = &self.data[..self.data.len().min(MAX_MESSAGE_LEN - HEADER_LEN - 2)];
        let len = (HEADER_LEN + 2 + data.len()) as u16;
        out.extend_from_slice(&len.to_be_bytes());
        out.push(TYPE_NOTIFICATION);
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(data);
        out
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code_name())?;
        if let Some(sub) = self.subcode_name() {
            write!(f, " / {sub}")?;
        }
        write!(f, " ({}/{})", self.code, self.subcode)?;
        if !self.data.is_empty() {
            // RFC 8203: Administrative Shutdown/Reset may carry a UTF-8 message, length-prefixed.
            if self.code == 6
                && (self.subcode == 2 || self.subcode == 4)
                && self.data.len() == usize::from(self.data[0]) + 1
                && let Ok(text) = std::str::from_utf8(&self.data[1..])
            {
                write!(f, ": \"{text}\"")?;
            } else {
                write!(f, " data ")?;
                for b in self.data.iter().take(32) {
                    write!(f, "{b:02x}")?;
                }
                if self.data.len() > 32 {
                    write!(f, "…")?;
                }
            }
        }
        Ok(())
    }
}

/// Converts netgauze's typed NOTIFICATION (produced by its error mapping) into code/subcode.
pub fn notification_from_netgauze(n: &BgpNotificationMessage) -> Notification {
    use BgpNotificationMessage as N;
    let (code, subcode, value): (u8, u8, &[u8]) = match n {
        N::MessageHeaderError(e) => match e {
            MessageHeaderError::Unspecific { value } => (1, 0, value),
            MessageHeaderError::ConnectionNotSynchronized { value } => (1, 1, value),
            MessageHeaderError::BadMessageLength { value } => (1, 2, value),
            MessageHeaderError::BadMessageType { value } => (1, 3, value),
        },
        N::OpenMessageError(e) => match e {
            OpenMessageError::Unspecific { value } => (2, 0, value),
            OpenMessageError::UnsupportedVersionNumber { value } => (2, 1, value),
            OpenMessageError::BadPeerAs { value } => (2, 2, value),
            OpenMessageError::BadBgpIdentifier { value } => (2, 3, value),
            OpenMessageError::UnsupportedOptionalParameter { value } => (2, 4, value),
            OpenMessageError::UnacceptableHoldTime { value } => (2, 6, value),
            OpenMessageError::UnsupportedCapability { value } => (2, 7, value),
            OpenMessageError::RoleMismatch { value } => (2, 11, value),
        },
        N::UpdateMessageError(e) => match e {
            UpdateMessageError::Unspecific { value } => (3, 0, value),
            UpdateMessageError::MalformedAttributeList { value } => (3, 1, value),
            UpdateMessageError::UnrecognizedWellKnownAttribute { value } => (3, 2, value),
            UpdateMessageError::MissingWellKnownAttribute { value } => (3, 3, value),
            UpdateMessageError::AttributeFlagsError { value } => (3, 4, value),
            UpdateMessageError::AttributeLengthError { value } => (3, 5, value),
            UpdateMessageError::InvalidOriginAttribute { value } => (3, 6, value),
            UpdateMessageError::InvalidNextHopAttribute { value } => (3, 8, value),
            UpdateMessageError::OptionalAttributeError { value } => (3, 9, value),
            UpdateMessageError::InvalidNetworkField { value } => (3, 10, value),
            UpdateMessageError::MalformedAsPath { value } => (3, 11, value),
        },
        N::HoldTimerExpiredError(HoldTimerExpiredError::Unspecific { sub_code, value }) => {
            (4, *sub_code, value)
        }
        N::FiniteStateMachineError(e) => match e {
            FiniteStateMachineError::Unspecific { value } => (5, 0, value),
            FiniteStateMachineError::ReceiveUnexpectedMessageInOpenSentState { value } => {
                (5, 1, value)
            }
            FiniteStateMachineError::ReceiveUnexpectedMessageInOpenConfirmState { value } => {
                (5, 2, value)
            }
            FiniteStateMachineError::ReceiveUnexpectedMessageInEstablishedState { value } => {
                (5, 3, value)
            }
        },
        N::CeaseError(e) => match e {
            CeaseError::MaximumNumberOfPrefixesReached { value } => (6, 1, value),
            CeaseError::AdministrativeShutdown { value } => (6, 2, value),
            CeaseError::PeerDeConfigured { value } => (6, 3, value),
            CeaseError::AdministrativeReset { value } => (6, 4, value),
            CeaseError::ConnectionRejected { value } => (6, 5, value),
            CeaseError::OtherConfigurationChange { value } => (6, 6, value),
            CeaseError::ConnectionCollisionResolution { value } => (6, 7, value),
            CeaseError::OutOfResources { value } => (6, 8, value),
            CeaseError::HardReset { value } => (6, 9, value),
            CeaseError::BfdDown { value } => (6, 10, value),
        },
        N::RouteRefreshError(RouteRefreshError::InvalidMessageLength { value }) => (7, 1, value),
    };
    Notification::new(code, subcode, value.to_vec())
}

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
        notification: Notification::new(1, subcode, data),
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
            1,
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
            2,
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
                3,
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
                malformed_attributes: ignored.path_attr_errors().len(),
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

// ---------------------------------------------------------------------------------------------
// OPEN

/// What we put in our OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenConfig {
    /// Our AS (4-octet; AS_TRANS goes in the 2-octet field when it does not fit).
    pub asn: u32,
    /// Proposed hold time in seconds (0 or >= 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Announce IPv4 unicast.
    pub ipv4: bool,
    /// Announce IPv6 unicast.
    pub ipv6: bool,
    /// Announce graceful restart (RFC 4724) as a helper-capable, non-restarting speaker.
    pub graceful_restart: bool,
}

/// Graceful restart time we announce (seconds).
pub const GRACEFUL_RESTART_TIME: u16 = 120;

/// Builds our OPEN.
pub fn build_open(c: &OpenConfig) -> BgpOpenMessage {
    let my_as = u16::try_from(c.asn).unwrap_or(AS_TRANS);
    let mut caps = Vec::new();
    let mut families = Vec::new();
    if c.ipv4 {
        families.push(AddressType::Ipv4Unicast);
    }
    if c.ipv6 {
        families.push(AddressType::Ipv6Unicast);
    }
    for f in &families {
        caps.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(*f),
        ));
    }
    caps.push(BgpCapability::RouteRefresh);
    caps.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        c.asn,
    )));
    if c.graceful_restart {
        // Forwarding state is not preserved by a speaker (it forwards nothing itself), so the
        // per-family F bit stays clear; the capability tells the router to keep our routes
        // for GRACEFUL_RESTART_TIME when the session drops without a NOTIFICATION.
        let afs: Vec<_> = families
            .iter()
            .map(|f| GracefulRestartAddressFamily::new(false, *f))
            .collect();
        caps.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(false, false, GRACEFUL_RESTART_TIME, afs),
        ));
    }
    BgpOpenMessage::new(
        my_as,
        c.hold_time,
        c.router_id,
        vec![BgpOpenMessageParameter::new_capabilities(caps)],
    )
}

/// What a peer's OPEN says, read into plain fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerOpen {
    /// BGP version field.
    pub version: u8,
    /// The peer's AS (from the 4-octet capability when present).
    pub asn: u32,
    /// The 2-octet "My AS" field as sent.
    pub my_as_field: u16,
    /// Proposed hold time.
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Announced 4-octet AS.
    pub four_octet_as: bool,
    /// Announced multiprotocol IPv4 unicast.
    pub mp_ipv4: bool,
    /// Announced multiprotocol IPv6 unicast.
    pub mp_ipv6: bool,
    /// Announced any multiprotocol capability at all (if none, IPv4 unicast is implied).
    pub mp_any: bool,
    /// Announced route refresh.
    pub route_refresh: bool,
    /// Announced graceful restart.
    pub graceful_restart: bool,
}

impl PeerOpen {
    /// Reads a parsed OPEN.
    pub fn from_open(open: &BgpOpenMessage) -> Self {
        let mut p = PeerOpen {
            version: open.version(),
            asn: u32::from(open.my_as()),
            my_as_field: open.my_as(),
            hold_time: open.hold_time(),
            router_id: open.bgp_id(),
            four_octet_as: false,
            mp_ipv4: false,
            mp_ipv6: false,
            mp_any: false,
            route_refresh: false,
            graceful_restart: false,
        };
        for cap in open.capabilities() {
            match cap {
                BgpCapability::FourOctetAs(a) => {
                    p.four_octet_as = true;
                    p.asn = a.asn4();
                }
                BgpCapability::MultiProtocolExtensions(mp) => {
                    p.mp_any = true;
                    match mp.address_type() {
                        AddressType::Ipv4Unicast => p.mp_ipv4 = true,
                        AddressType::Ipv6Unicast => p.mp_ipv6 = true,
                        _ => {}
                    }
                }
                BgpCapability::RouteRefresh | BgpCapability::EnhancedRouteRefresh => {
                    p.route_refresh = true
                }
                BgpCapability::GracefulRestartCapability(_) => p.graceful_restart = true,
                _ => {}
            }
        }
        p
    }

    /// Whether the peer accepts IPv4 unicast (RFC 4760: without any multiprotocol
    /// capability, IPv4 unicast is implied).
    pub fn accepts_ipv4(&self) -> bool {
        self.mp_ipv4 || !self.mp_any
    }
}

// ---------------------------------------------------------------------------------------------
// UPDATE

/// Session-wide facts an UPDATE depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateContext {
    /// Our AS.
    pub local_as: u32,
    /// eBGP (prepend our AS, no LOCAL_PREF) or iBGP (empty AS_PATH, LOCAL_PREF).
    pub ebgp: bool,
    /// Negotiated 4-octet AS: AS_PATH width.
    pub four_octet_as: bool,
    /// NEXT_HOP for IPv4 prefixes (our IPv4 address on the session, or a configured one).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Global IPv6 next hop for IPv6 prefixes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Link-local IPv6 next hop (sent too when the session runs over link-local).
    pub next_hop_v6_link_local: Option<Ipv6Addr>,
}

/// Errors building UPDATEs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// No next hop for the family.
    #[error("no {0} next hop for this session")]
    NoNextHop(&'static str),
    /// A prefix netgauze refuses (multicast/broadcast).
    #[error("prefix {0} is not unicast")]
    NotUnicast(IpNet),
}

fn attr(optional: bool, transitive: bool, extended: bool, v: PathAttributeValue) -> PathAttribute {
    match PathAttribute::from(optional, transitive, false, extended, v) {
        Ok(a) => a,
        // Flags come from the constants below, matched to each attribute type; a mismatch is a
        // bug in this file, caught by the round-trip tests.
        Err((v, e)) => panic!("attribute flags for {v:?}: {e}"),
    }
}

fn common_attributes(ctx: &UpdateContext, attrs: &RouteAttributes) -> (Vec<PathAttribute>, usize) {
    let mut out = Vec::new();
    let mut size = 0usize;
    out.push(attr(
        false,
        true,
        false,
        PathAttributeValue::Origin(Origin::IGP),
    ));
    size += 4;
    let as_path = match (ctx.ebgp, ctx.four_octet_as) {
        (false, false) => AsPath::As2PathSegments(Box::new([])),
        (false, true) => AsPath::As4PathSegments(Box::new([])),
        (true, false) => {
            // Without the 4-octet capability an AS above 65535 travels as AS_TRANS (RFC 6793);
            // we never send AS4_PATH since we originate (the peer learns the real AS from OPEN).
            let a = u16::try_from(ctx.local_as).unwrap_or(AS_TRANS);
            AsPath::As2PathSegments(Box::new([As2PathSegment::new(
                AsPathSegmentType::AsSequence,
                vec![a],
            )]))
        }
        (true, true) => AsPath::As4PathSegments(Box::new([As4PathSegment::new(
            AsPathSegmentType::AsSequence,
            vec![ctx.local_as],
        )])),
    };
    out.push(attr(
        false,
        true,
        false,
        PathAttributeValue::AsPath(as_path),
    ));
    size += 3 + 2 + 4;
    if !ctx.ebgp
        && let Some(lp) = attrs.local_pref
    {
        out.push(attr(
            false,
            true,
            false,
            PathAttributeValue::LocalPreference(LocalPreference::new(lp)),
        ));
        size += 7;
    }
    let std: Vec<Community> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            CommunityValue::Standard(v) => Some(Community::new(*v)),
            CommunityValue::Large(..) => None,
        })
        .collect();
    if !std.is_empty() {
        let len = std.len() * 4;
        size += 4 + len;
        out.push(attr(
            true,
            true,
            len > 255,
            PathAttributeValue::Communities(Communities::new(std)),
        ));
    }
    let large: Vec<LargeCommunity> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            CommunityValue::Large(a, b, c) => Some(LargeCommunity::new(*a, *b, *c)),
            CommunityValue::Standard(_) => None,
        })
        .collect();
    if !large.is_empty() {
        let len = large.len() * 12;
        size += 4 + len;
        out.push(attr(
            true,
            true,
            len > 255,
            PathAttributeValue::LargeCommunities(LargeCommunities::new(large)),
        ));
    }
    (out, size)
}

fn v4_nlri(p: Ipv4Net) -> Result<Ipv4UnicastAddress, BuildError> {
    Ipv4Unicast::from_net(p.trunc())
        .map(Ipv4UnicastAddress::new_no_path_id)
        .map_err(|_| BuildError::NotUnicast(IpNet::V4(p)))
}

fn v6_nlri(p: Ipv6Net) -> Result<Ipv6UnicastAddress, BuildError> {
    Ipv6Unicast::from_net(p.trunc())
        .map(|n| Ipv6UnicastAddress::new(None, n))
        .map_err(|_| BuildError::NotUnicast(IpNet::V6(p)))
}

fn nlri_size(p: &IpNet) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

/// Splits `items` into chunks whose encoded NLRI fit `budget` octets (at least one per chunk).
fn chunk_by_size(items: &[IpNet], budget: usize) -> Vec<&[IpNet]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in items.iter().enumerate() {
        let s = nlri_size(p);
        if i > start && used + s > budget {
            out.push(&items[start..i]);
            start = i;
            used = 0;
        }
        used += s;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Builds the UPDATEs announcing `prefixes` with identical attributes: IPv4 in the classic
/// NLRI field with NEXT_HOP, IPv6 in MP_REACH_NLRI; as many prefixes per message as fit.
pub fn build_announcements(
    ctx: &UpdateContext,
    attrs: &RouteAttributes,
    prefixes: &[IpNet],
) -> Result<Vec<BgpUpdateMessage>, BuildError> {
    let v4: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv4())
        .copied()
        .collect();
    let v6: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv6())
        .copied()
        .collect();
    let (base, base_size) = common_attributes(ctx, attrs);
    let mut out = Vec::new();
    let budget_base = MAX_MESSAGE_LEN - 23 - base_size;
    if !v4.is_empty() {
        let nh = ctx.next_hop_v4.ok_or(BuildError::NoNextHop("IPv4"))?;
        let mut pa = base.clone();
        // Attributes go in type-code order (ORIGIN, AS_PATH, NEXT_HOP, …) like BIRD and FRR
        // send them; receivers do not require it, but identical bytes make captures comparable.
        pa.insert(
            2,
            attr(
                false,
                true,
                false,
                PathAttributeValue::NextHop(NextHop::new(nh)),
            ),
        );
        for chunk in chunk_by_size(&v4, budget_base.saturating_sub(7)) {
            let nlri = chunk
                .iter()
                .map(|p| match p {
                    IpNet::V4(n) => v4_nlri(*n),
                    IpNet::V6(_) => unreachable!("filtered to IPv4"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(BgpUpdateMessage::new(vec![], pa.clone(), nlri));
        }
    }
    if !v6.is_empty() {
        let nh = ctx.next_hop_v6.ok_or(BuildError::NoNextHop("IPv6"))?;
        // MP_REACH header: flags, type, 2-octet length, AFI, SAFI, NH len, NH, reserved.
        let overhead = 4
            + 3
            + 1
            + if ctx.next_hop_v6_link_local.is_some() {
                32
            } else {
                16
            }
            + 1;
        for chunk in chunk_by_size(&v6, budget_base.saturating_sub(overhead)) {
            let nlri = chunk
                .iter()
                .map(|p| match p {
                    IpNet::V6(n) => v6_nlri(*n),
                    IpNet::V4(_) => unreachable!("filtered to IPv6"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut pa = Vec::with_capacity(base.len() + 1);
            // RFC 4760 suggests MP_REACH_NLRI first; BIRD and FRR both send it first.
            pa.push(attr(
                true,
                false,
                true,
                PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                    next_hop_global: nh,
                    next_hop_local: ctx.next_hop_v6_link_local,
                    nlri: nlri.into(),
                }),
            ));
            pa.extend(base.iter().cloned());
            out.push(BgpUpdateMessage::new(vec![], pa, vec![]));
        }
    }
    Ok(out)
}

/// Builds the UPDATEs withdrawing `prefixes` (IPv4 in Withdrawn Routes, IPv6 in
/// MP_UNREACH_NLRI), as many per message as fit.
pub fn build_withdrawals(prefixes: &[IpNet]) -> Result<Vec<BgpUpdateMessage>, BuildError> {
    let v4: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv4())
        .copied()
        .collect();
    let v6: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv6())
        .copied()
        .collect();
    let mut out = Vec::new();
    for chunk in chunk_by_size(&v4, MAX_MESSAGE_LEN - 23) {
        let w = chunk
            .iter()
            .map(|p| match p {
                IpNet::V4(n) => v4_nlri(*n),
                IpNet::V6(_) => unreachable!("filtered to IPv4"),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(BgpUpdateMessage::new(w, vec![], vec![]));
    }
    for chunk in chunk_by_size(&v6, MAX_MESSAGE_LEN - 23 - 4 - 3) {
        let w = chunk
            .iter()
            .map(|p| match p {
                IpNet::V6(n) => v6_nlri(*n),
                IpNet::V4(_) => unreachable!("filtered to IPv6"),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(BgpUpdateMessage::new(
            vec![],
            vec![attr(
                true,
                false,
                true,
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri: w.into() }),
            )],
            vec![],
        ));
    }
    Ok(out)
}

/// End-of-RIB marker (RFC 4724) for a family.
pub fn end_of_rib(ipv6: bool) -> BgpUpdateMessage {
    if ipv6 {
        BgpUpdateMessage::new(
            vec![],
            vec![attr(
                true,
                false,
                false,
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri: Box::new([]) }),
            )],
            vec![],
        )
    } else {
        BgpUpdateMessage::new(vec![], vec![], vec![])
    }
}

/// A ROUTE-REFRESH request (RFC 2918) for IPv4 or IPv6 unicast.
pub fn route_refresh(ipv6: bool) -> BgpRouteRefreshMessage {
    BgpRouteRefreshMessage::new(
        if ipv6 {
            AddressType::Ipv6Unicast
        } else {
            AddressType::Ipv4Unicast
        },
        netgauze_bgp_pkt::iana::RouteRefreshSubcode::NormalRequest,
    )
}

/// A received UPDATE in plain fields (for tests and logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Withdrawn prefixes (IPv4 field and MP_UNREACH_NLRI).
    pub withdrawn: Vec<IpNet>,
    /// Announced prefixes (NLRI field and MP_REACH_NLRI).
    pub announced: Vec<IpNet>,
    /// ORIGIN code.
    pub origin: Option<u8>,
    /// AS_PATH flattened.
    pub as_path: Vec<u32>,
    /// NEXT_HOP or MP_REACH global next hop.
    pub next_hop: Option<IpAddr>,
    /// MP_REACH link-local next hop.
    pub next_hop_link_local: Option<Ipv6Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// Communities and large communities, in message order.
    pub communities: Vec<CommunityValue>,
    /// Type codes of attributes we do not interpret.
    pub other_attributes: Vec<u8>,
}

/// Reads an UPDATE into plain fields.
pub fn summarize_update(u: &BgpUpdateMessage) -> UpdateSummary {
    let mut s = UpdateSummary::default();
    s.withdrawn.extend(
        u.withdraw_routes()
            .iter()
            .map(|w| IpNet::V4(w.network().address())),
    );
    s.announced
        .extend(u.nlri().iter().map(|n| IpNet::V4(n.network().address())));
    for a in u.path_attributes() {
        match a.value() {
            PathAttributeValue::Origin(o) => s.origin = Some(*o as u8),
            PathAttributeValue::AsPath(p) => s.as_path = Vec::<u32>::from(p.clone()),
            PathAttributeValue::NextHop(n) => s.next_hop = Some(IpAddr::V4(n.next_hop())),
            PathAttributeValue::MultiExitDiscriminator(m) => s.med = Some(m.metric()),
            PathAttributeValue::LocalPreference(l) => s.local_pref = Some(l.metric()),
            PathAttributeValue::Communities(c) => s.communities.extend(
                c.communities()
                    .iter()
                    .map(|c| CommunityValue::Standard(c.value())),
            ),
            PathAttributeValue::LargeCommunities(c) => {
                s.communities.extend(c.communities().iter().map(|c| {
                    CommunityValue::Large(c.global_admin(), c.local_data1(), c.local_data2())
                }))
            }
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global,
                next_hop_local,
                nlri,
            }) => {
                s.next_hop = Some(IpAddr::V6(*next_hop_global));
                s.next_hop_link_local = *next_hop_local;
                s.announced
                    .extend(nlri.iter().map(|n| IpNet::V6(n.network().address())));
            }
            PathAttributeValue::MpReach(MpReach::Ipv4Unicast {
                next_hop,
                next_hop_local,
                nlri,
            }) => {
                s.next_hop = Some(*next_hop);
                s.next_hop_link_local = *next_hop_local;
                s.announced
                    .extend(nlri.iter().map(|n| IpNet::V4(n.network().address())));
            }
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => s
                .withdrawn
                .extend(nlri.iter().map(|n| IpNet::V6(n.network().address()))),
            PathAttributeValue::MpUnreach(MpUnreach::Ipv4Unicast { nlri }) => s
                .withdrawn
                .extend(nlri.iter().map(|n| IpNet::V4(n.network().address()))),
            _ => s.other_attributes.push(match a.path_attribute_type() {
                Ok(t) => t as u8,
                Err(code) => code,
            }),
        }
    }
    s
}

#[cfg(test)]
mod tests;
