//! NOTIFICATION (RFC 4271 §4.5), kept as raw code, subcode and data: netgauze refuses codes it
//! does not know, and a peer may send any (RFC 4271 says the receiver must not answer a
//! NOTIFICATION with one). The code and subcode values are named after the IANA "BGP Error
//! (Notification) Codes" registry, taken from netgauze's copy of it.

use super::header::{HEADER_LEN, MAX_MESSAGE_LEN, TYPE_NOTIFICATION};
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_parse_utils::WritablePdu;
use std::fmt;

/// Error codes.
pub mod code {
    use netgauze_bgp_pkt::iana::BgpErrorNotificationCode as C;

    /// Message Header Error (1).
    pub const MESSAGE_HEADER: u8 = C::MessageHeaderError as u8;
    /// OPEN Message Error (2).
    pub const OPEN_MESSAGE: u8 = C::OpenMessageError as u8;
    /// UPDATE Message Error (3).
    pub const UPDATE_MESSAGE: u8 = C::UpdateMessageError as u8;
    /// Hold Timer Expired (4).
    pub const HOLD_TIMER_EXPIRED: u8 = C::HoldTimerExpired as u8;
    /// Finite State Machine Error (5, RFC 6608).
    pub const FINITE_STATE_MACHINE: u8 = C::FiniteStateMachineError as u8;
    /// Cease (6, subcodes RFC 4486).
    pub const CEASE: u8 = C::Cease as u8;
    /// ROUTE-REFRESH Message Error (7, RFC 7313).
    pub const ROUTE_REFRESH_MESSAGE: u8 = C::RouteRefreshMessageError as u8;
}

/// Subcodes, each meaningful under the code its group names.
pub mod subcode {
    use netgauze_bgp_pkt::iana::{
        CeaseErrorSubCode as Cease, FiniteStateMachineErrorSubCode as Fsm,
        MessageHeaderErrorSubCode as Header, OpenMessageErrorSubCode as Open,
        RouteRefreshMessageErrorSubCode as RouteRefresh, UpdateMessageErrorSubCode as Update,
    };

    /// Any code: no specific subcode (0).
    pub const UNSPECIFIC: u8 = 0;

    /// Message Header Error: Connection Not Synchronized.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = Header::ConnectionNotSynchronized as u8;
    /// Message Header Error: Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = Header::BadMessageLength as u8;
    /// Message Header Error: Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = Header::BadMessageType as u8;

    /// OPEN Message Error: Unsupported Version Number.
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = Open::UnsupportedVersionNumber as u8;
    /// OPEN Message Error: Bad Peer AS.
    pub const BAD_PEER_AS: u8 = Open::BadPeerAs as u8;
    /// OPEN Message Error: Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = Open::BadBgpIdentifier as u8;
    /// OPEN Message Error: Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = Open::UnsupportedOptionalParameter as u8;
    /// OPEN Message Error: Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = Open::UnacceptableHoldTime as u8;
    /// OPEN Message Error: Unsupported Capability.
    pub const UNSUPPORTED_CAPABILITY: u8 = Open::UnsupportedCapability as u8;
    /// OPEN Message Error: Role Mismatch (RFC 9234).
    pub const ROLE_MISMATCH: u8 = Open::RoleMismatch as u8;

    /// UPDATE Message Error: Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = Update::MalformedAttributeList as u8;
    /// UPDATE Message Error: Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = Update::UnrecognizedWellKnownAttribute as u8;
    /// UPDATE Message Error: Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = Update::MissingWellKnownAttribute as u8;
    /// UPDATE Message Error: Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = Update::AttributeFlagsError as u8;
    /// UPDATE Message Error: Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = Update::AttributeLengthError as u8;
    /// UPDATE Message Error: Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = Update::InvalidOriginAttribute as u8;
    /// UPDATE Message Error: Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = Update::InvalidNextHopAttribute as u8;
    /// UPDATE Message Error: Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = Update::OptionalAttributeError as u8;
    /// UPDATE Message Error: Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = Update::InvalidNetworkField as u8;
    /// UPDATE Message Error: Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = Update::MalformedAsPath as u8;

    /// Finite State Machine Error: unexpected message in OpenSent.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = Fsm::ReceiveUnexpectedMessageInOpenSentState as u8;
    /// Finite State Machine Error: unexpected message in OpenConfirm.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 =
        Fsm::ReceiveUnexpectedMessageInOpenConfirmState as u8;
    /// Finite State Machine Error: unexpected message in Established.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = Fsm::ReceiveUnexpectedMessageInEstablishedState as u8;

    /// Cease: Maximum Number of Prefixes Reached.
    pub const MAXIMUM_NUMBER_OF_PREFIXES_REACHED: u8 = Cease::MaximumNumberOfPrefixesReached as u8;
    /// Cease: Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = Cease::AdministrativeShutdown as u8;
    /// Cease: Peer De-configured.
    pub const PEER_DE_CONFIGURED: u8 = Cease::PeerDeConfigured as u8;
    /// Cease: Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = Cease::AdministrativeReset as u8;
    /// Cease: Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = Cease::ConnectionRejected as u8;
    /// Cease: Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = Cease::OtherConfigurationChange as u8;
    /// Cease: Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = Cease::ConnectionCollisionResolution as u8;
    /// Cease: Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = Cease::OutOfResources as u8;
    /// Cease: Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = Cease::HardReset as u8;
    /// Cease: BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = Cease::BfdDown as u8;

    /// ROUTE-REFRESH Message Error: Invalid Message Length.
    pub const INVALID_MESSAGE_LENGTH: u8 = RouteRefresh::InvalidMessageLength as u8;
}

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
        Notification::new(code::CEASE, subcode::ADMINISTRATIVE_SHUTDOWN, Vec::new())
    }

    /// Cease / Administrative Reset (6/4): the speaker restarts in place. With RFC 8538's N bit
    /// negotiated, the router keeps our routes through it (the RFC leaves this subcode's
    /// treatment to the operator and retains routes for every NOTIFICATION but Hard Reset).
    pub fn cease_admin_reset() -> Self {
        Notification::new(code::CEASE, subcode::ADMINISTRATIVE_RESET, Vec::new())
    }

    /// Cease / Hard Reset (6/9, RFC 8538 §3): the router must drop our routes at once even with
    /// graceful restart negotiated. The data carries the NOTIFICATION it stands for (code,
    /// subcode, data).
    pub fn hard_reset(reason: &Notification) -> Self {
        let mut data = Vec::with_capacity(2 + reason.data.len());
        data.extend([reason.code, reason.subcode]);
        data.extend_from_slice(&reason.data);
        Notification::new(code::CEASE, subcode::HARD_RESET, data)
    }

    /// Cease / Peer De-configured (6/3).
    pub fn cease_deconfigured() -> Self {
        Notification::new(code::CEASE, subcode::PEER_DE_CONFIGURED, Vec::new())
    }

    /// Cease / Other Configuration Change (6/6).
    pub fn cease_config_change() -> Self {
        Notification::new(code::CEASE, subcode::OTHER_CONFIGURATION_CHANGE, Vec::new())
    }

    /// Cease / BFD Down (6/10, RFC 9384).
    pub fn cease_bfd_down() -> Self {
        Notification::new(code::CEASE, subcode::BFD_DOWN, Vec::new())
    }

    /// Hold Timer Expired (4/0).
    pub fn hold_timer_expired() -> Self {
        Notification::new(code::HOLD_TIMER_EXPIRED, subcode::UNSPECIFIC, Vec::new())
    }

    /// Finite State Machine Error (5/x): an unexpected message in a state.
    pub fn fsm_error(subcode: u8) -> Self {
        Notification::new(code::FINITE_STATE_MACHINE, subcode, Vec::new())
    }

    /// Name of the error code.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FINITE_STATE_MACHINE => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH_MESSAGE => "ROUTE-REFRESH Message Error",
            _ => "Unknown error code",
        }
    }

    /// Name of the subcode, when the code defines it.
    pub fn subcode_name(&self) -> Option<&'static str> {
        use code::*;
        use subcode::*;
        let name = match (self.code, self.subcode) {
            (MESSAGE_HEADER, CONNECTION_NOT_SYNCHRONIZED) => "Connection Not Synchronized",
            (MESSAGE_HEADER, BAD_MESSAGE_LENGTH) => "Bad Message Length",
            (MESSAGE_HEADER, BAD_MESSAGE_TYPE) => "Bad Message Type",
            (OPEN_MESSAGE, UNSUPPORTED_VERSION_NUMBER) => "Unsupported Version Number",
            (OPEN_MESSAGE, BAD_PEER_AS) => "Bad Peer AS",
            (OPEN_MESSAGE, BAD_BGP_IDENTIFIER) => "Bad BGP Identifier",
            (OPEN_MESSAGE, UNSUPPORTED_OPTIONAL_PARAMETER) => "Unsupported Optional Parameter",
            (OPEN_MESSAGE, UNACCEPTABLE_HOLD_TIME) => "Unacceptable Hold Time",
            (OPEN_MESSAGE, UNSUPPORTED_CAPABILITY) => "Unsupported Capability",
            (OPEN_MESSAGE, ROLE_MISMATCH) => "Role Mismatch",
            (UPDATE_MESSAGE, MALFORMED_ATTRIBUTE_LIST) => "Malformed Attribute List",
            (UPDATE_MESSAGE, UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "Unrecognized Well-known Attribute"
            }
            (UPDATE_MESSAGE, MISSING_WELL_KNOWN_ATTRIBUTE) => "Missing Well-known Attribute",
            (UPDATE_MESSAGE, ATTRIBUTE_FLAGS_ERROR) => "Attribute Flags Error",
            (UPDATE_MESSAGE, ATTRIBUTE_LENGTH_ERROR) => "Attribute Length Error",
            (UPDATE_MESSAGE, INVALID_ORIGIN_ATTRIBUTE) => "Invalid ORIGIN Attribute",
            (UPDATE_MESSAGE, INVALID_NEXT_HOP_ATTRIBUTE) => "Invalid NEXT_HOP Attribute",
            (UPDATE_MESSAGE, OPTIONAL_ATTRIBUTE_ERROR) => "Optional Attribute Error",
            (UPDATE_MESSAGE, INVALID_NETWORK_FIELD) => "Invalid Network Field",
            (UPDATE_MESSAGE, MALFORMED_AS_PATH) => "Malformed AS_PATH",
            (FINITE_STATE_MACHINE, UNEXPECTED_IN_OPEN_SENT) => "Unexpected Message in OpenSent",
            (FINITE_STATE_MACHINE, UNEXPECTED_IN_OPEN_CONFIRM) => {
                "Unexpected Message in OpenConfirm"
            }
            (FINITE_STATE_MACHINE, UNEXPECTED_IN_ESTABLISHED) => {
                "Unexpected Message in Established"
            }
            (CEASE, MAXIMUM_NUMBER_OF_PREFIXES_REACHED) => "Maximum Number of Prefixes Reached",
            (CEASE, ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
            (CEASE, PEER_DE_CONFIGURED) => "Peer De-configured",
            (CEASE, ADMINISTRATIVE_RESET) => "Administrative Reset",
            (CEASE, CONNECTION_REJECTED) => "Connection Rejected",
            (CEASE, OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
            (CEASE, CONNECTION_COLLISION_RESOLUTION) => "Connection Collision Resolution",
            (CEASE, OUT_OF_RESOURCES) => "Out of Resources",
            (CEASE, HARD_RESET) => "Hard Reset",
            (CEASE, BFD_DOWN) => "BFD Down",
            (ROUTE_REFRESH_MESSAGE, INVALID_MESSAGE_LENGTH) => "Invalid Message Length",
            (_, UNSPECIFIC) => "Unspecific",
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
            if self.code == code::CEASE
                && (self.subcode == subcode::ADMINISTRATIVE_SHUTDOWN
                    || self.subcode == subcode::ADMINISTRATIVE_RESET)
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

/// Converts netgauze's typed NOTIFICATION (produced by its error mapping) into code, subcode
/// and data, as netgauze itself writes them on the wire.
pub fn notification_from_netgauze(n: &BgpNotificationMessage) -> Notification {
    let mut wire = Vec::new();
    match n.write(&mut wire) {
        Ok(()) if wire.len() >= 2 => Notification::new(wire[0], wire[1], wire[2..].to_vec()),
        // Writing into a Vec does not fail; were it to, the code alone is still right.
        _ => Notification::new(code_of(n), subcode::UNSPECIFIC, Vec::new()),
    }
}

fn code_of(n: &BgpNotificationMessage) -> u8 {
    use BgpNotificationMessage as N;
    match n {
        N::MessageHeaderError(_) => code::MESSAGE_HEADER,
        N::OpenMessageError(_) => code::OPEN_MESSAGE,
        N::UpdateMessageError(_) => code::UPDATE_MESSAGE,
        N::HoldTimerExpiredError(_) => code::HOLD_TIMER_EXPIRED,
        N::FiniteStateMachineError(_) => code::FINITE_STATE_MACHINE,
        N::CeaseError(_) => code::CEASE,
        N::RouteRefreshError(_) => code::ROUTE_REFRESH_MESSAGE,
    }
}
