//! The fixed part of every BGP message (RFC 4271 §4.1): sizes and message types.

use netgauze_bgp_pkt::iana::BgpMessageType;

/// Largest BGP message without the extended-message capability (which we do not announce).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Header length: marker, length, type.
pub const HEADER_LEN: usize = 19;

/// Message type OPEN.
pub const TYPE_OPEN: u8 = BgpMessageType::Open as u8;
/// Message type UPDATE.
pub const TYPE_UPDATE: u8 = BgpMessageType::Update as u8;
/// Message type NOTIFICATION.
pub const TYPE_NOTIFICATION: u8 = BgpMessageType::Notification as u8;
/// Message type KEEPALIVE.
pub const TYPE_KEEPALIVE: u8 = BgpMessageType::KeepAlive as u8;
/// Message type ROUTE-REFRESH (RFC 2918).
pub const TYPE_ROUTE_REFRESH: u8 = BgpMessageType::RouteRefresh as u8;
