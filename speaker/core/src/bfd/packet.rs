//! BFD Control packet codec (RFC 5880 §4.1) with the reception checks of §6.8.6 that depend
//! on the packet alone.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |
//! ```
//!
//! We never configure authentication, so a packet with the A bit is parsed far enough to
//! report its type and then discarded, as §6.8.6 requires ("If the A bit is set and no
//! authentication is in use (bfd.AuthType is zero), the packet MUST be discarded").

use std::fmt;
use thiserror::Error;

/// Protocol version carried in every packet.
pub const VERSION: u8 = 1;
/// Length of a Control packet without authentication section.
pub const MIN_LEN: usize = 24;
/// Minimum length when the A bit is set (header plus Auth Type and Auth Len).
const MIN_LEN_AUTH: usize = 26;

/// Session state as carried in the `Sta` field (RFC 5880 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BfdState {
    /// 0: administratively held down.
    AdminDown,
    /// 1: down.
    Down,
    /// 2: initializing (we hear the remote, it does not yet hear us).
    Init,
    /// 3: up.
    Up,
}

impl BfdState {
    fn from_bits(bits: u8) -> BfdState {
        match bits & 0b11 {
            0 => BfdState::AdminDown,
            1 => BfdState::Down,
            2 => BfdState::Init,
            _ => BfdState::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            BfdState::AdminDown => 0,
            BfdState::Down => 1,
            BfdState::Init => 2,
            BfdState::Up => 3,
        }
    }
}

impl fmt::Display for BfdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BfdState::AdminDown => "AdminDown",
            BfdState::Down => "Down",
            BfdState::Init => "Init",
            BfdState::Up => "Up",
        })
    }
}

/// Diagnostic code (RFC 5880 §4.1): why the sender last left Up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0
    NoDiagnostic,
    /// 1
    ControlDetectionTimeExpired,
    /// 2
    EchoFunctionFailed,
    /// 3
    NeighborSignaledSessionDown,
    /// 4
    ForwardingPlaneReset,
    /// 5
    PathDown,
    /// 6
    ConcatenatedPathDown,
    /// 7
    AdministrativelyDown,
    /// 8
    ReverseConcatenatedPathDown,
    /// 9–31: reserved; kept so that decoding never loses information.
    Reserved(u8),
}

impl Diagnostic {
    fn from_bits(bits: u8) -> Diagnostic {
        match bits & 0x1f {
            0 => Diagnostic::NoDiagnostic,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Reserved(other),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Diagnostic::NoDiagnostic => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(v) => v & 0x1f,
        }
    }
}

/// A decoded (or to-be-encoded) Control packet without authentication section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diagnostic code.
    pub diag: Diagnostic,
    /// Sender's session state.
    pub state: BfdState,
    /// Poll (P): the sender asks for a Final.
    pub poll: bool,
    /// Final (F): answer to a Poll.
    pub final_: bool,
    /// Control Plane Independent (C).
    pub cpi: bool,
    /// Demand (D).
    pub demand: bool,
    /// Detect Mult: the sender's detection multiplier.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discr: u32,
    /// Your Discriminator (0 when the remote's is not known yet).
    pub your_discr: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds (0: no echo wanted).
    pub required_min_echo_rx_us: u32,
}

/// Why a received datagram was discarded (RFC 5880 §6.8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than a Control packet (or than the Length field says).
    #[error("packet of {got} bytes is shorter than {need}")]
    TooShort {
        /// Bytes received (or Length field value).
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Version is not 1.
    #[error("version {0} (only 1 is defined)")]
    Version(u8),
    /// Length field larger than the datagram.
    #[error("length field {field} exceeds the {payload} bytes received")]
    LengthExceedsPayload {
        /// Length field.
        field: usize,
        /// Datagram size.
        payload: usize,
    },
    /// Detect Mult is zero.
    #[error("detect multiplier is zero")]
    ZeroDetectMult,
    /// The Multipoint bit is set (reserved for future point-to-multipoint extensions).
    #[error("multipoint bit is set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the state is neither Down nor AdminDown.
    #[error("your discriminator is zero in state {0}")]
    ZeroYourDiscriminator(BfdState),
    /// Authentication present; ferrolb configures no BFD authentication.
    #[error("authentication (type {auth_type}) is present but none is configured")]
    Authenticated {
        /// Auth Type field.
        auth_type: u8,
    },
    /// The A bit is set but the authentication section is inconsistent.
    #[error("malformed authentication section (auth len {auth_len}, packet length {length})")]
    MalformedAuth {
        /// Auth Len field.
        auth_len: usize,
        /// Length field.
        length: usize,
    },
}

impl ControlPacket {
    /// The 24 bytes of this packet (no authentication section; Multipoint always clear).
    pub fn encode(&self) -> [u8; MIN_LEN] {
        let mut b = [0u8; MIN_LEN];
        b[0] = (VERSION << 5) | self.diag.bits();
        b[1] = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = MIN_LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }

    /// Decodes a datagram, applying every check of RFC 5880 §6.8.6 that needs no session.
    pub fn decode(data: &[u8]) -> Result<ControlPacket, DecodeError> {
        let header: &[u8; MIN_LEN] =
            data.get(..MIN_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or(DecodeError::TooShort {
                    got: data.len(),
                    need: MIN_LEN,
                })?;
        let version = header[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let auth = header[1] & 0b0000_0100 != 0;
        let length = usize::from(header[3]);
        let need = if auth { MIN_LEN_AUTH } else { MIN_LEN };
        if length < need {
            return Err(DecodeError::TooShort { got: length, need });
        }
        if length > data.len() {
            return Err(DecodeError::LengthExceedsPayload {
                field: length,
                payload: data.len(),
            });
        }
        let word =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let packet = ControlPacket {
            diag: Diagnostic::from_bits(header[0]),
            state: BfdState::from_bits(header[1] >> 6),
            poll: header[1] & 0b0010_0000 != 0,
            final_: header[1] & 0b0001_0000 != 0,
            cpi: header[1] & 0b0000_1000 != 0,
            demand: header[1] & 0b0000_0010 != 0,
            detect_mult: header[2],
            my_discr: word(4),
            your_discr: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        };
        if packet.detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if header[1] & 0b0000_0001 != 0 {
            return Err(DecodeError::Multipoint);
        }
        if packet.my_discr == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        if packet.your_discr == 0 && matches!(packet.state, BfdState::Init | BfdState::Up) {
            return Err(DecodeError::ZeroYourDiscriminator(packet.state));
        }
        if auth {
            // Auth Type and Auth Len follow the fixed header; the section must fit the
            // Length field. Either way the packet is discarded: we use no authentication.
            let auth_type = data.get(MIN_LEN).copied().unwrap_or_default();
            let auth_len = usize::from(data.get(MIN_LEN + 1).copied().unwrap_or_default());
            if auth_len < 2 || MIN_LEN + auth_len != length {
                return Err(DecodeError::MalformedAuth { auth_len, length });
            }
            return Err(DecodeError::Authenticated { auth_type });
        }
        Ok(packet)
    }
}

#[cfg(test)]
mod tests;
