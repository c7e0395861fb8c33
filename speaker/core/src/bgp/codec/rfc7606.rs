//! RFC 7606 for received UPDATEs: path attributes whose length is wrong for their type are
//! taken out of the message before it is parsed, so a bad optional attribute costs the routes
//! of one UPDATE ("treat-as-withdraw", or "attribute discard" for the attributes §7 allows to
//! drop) instead of the session. This speaker imports no routes, so both approaches come down
//! to dropping the attribute and counting it.
//!
//! The parser would otherwise read such an attribute's value past its length (a 3-octet
//! COMMUNITIES reads a 4th octet from the NLRI) and fail the whole message. What cannot be
//! judged per attribute stays a session reset, as §4 and §5 say: withdrawn-routes or total
//! attribute lengths that overrun the message, and an attribute whose length runs past the
//! attribute list (then the NLRI cannot be located). MP_REACH_NLRI and MP_UNREACH_NLRI are
//! left to the parser too (§7.11: their errors reset the session when the NLRI cannot be
//! parsed).

use super::header::HEADER_LEN;

const ORIGIN: u8 = 1;
const NEXT_HOP: u8 = 3;
const MULTI_EXIT_DISC: u8 = 4;
const LOCAL_PREF: u8 = 5;
const ATOMIC_AGGREGATE: u8 = 6;
const AGGREGATOR: u8 = 7;
const COMMUNITIES: u8 = 8;
const ORIGINATOR_ID: u8 = 9;
const CLUSTER_LIST: u8 = 10;
const EXTENDED_COMMUNITIES: u8 = 16;
const AS4_AGGREGATOR: u8 = 18;
const LARGE_COMMUNITIES: u8 = 32;
/// Attribute flag: the length field is two octets.
const EXTENDED_LENGTH: u8 = 0x10;

/// Whether an attribute of `type_code` cannot have a value of `len` octets (RFC 7606 §7,
/// RFC 8092 §5 for LARGE_COMMUNITIES); types not listed are judged by the parser.
fn length_is_malformed(type_code: u8, len: usize, four_octet_as: bool) -> bool {
    match type_code {
        ORIGIN => len != 1,
        NEXT_HOP | MULTI_EXIT_DISC | LOCAL_PREF | ORIGINATOR_ID => len != 4,
        ATOMIC_AGGREGATE => len != 0,
        AGGREGATOR => len != if four_octet_as { 8 } else { 6 },
        AS4_AGGREGATOR => len != 8,
        COMMUNITIES | CLUSTER_LIST => len == 0 || !len.is_multiple_of(4),
        EXTENDED_COMMUNITIES => len == 0 || !len.is_multiple_of(8),
        LARGE_COMMUNITIES => len == 0 || !len.is_multiple_of(12),
        _ => false,
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

/// `frame` (a whole UPDATE, header included) without the attributes whose length is wrong for
/// their type, and how many were taken out; `None` when none was, or when the message's own
/// lengths do not hold together (the parser then answers with the session reset RFC 7606 §4
/// keeps for that case).
pub fn without_malformed_attributes(frame: &[u8], four_octet_as: bool) -> Option<(Vec<u8>, usize)> {
    let withdrawn_len = u16_at(frame, HEADER_LEN)?;
    let attrs_len_at = HEADER_LEN + 2 + withdrawn_len;
    let attrs_len = u16_at(frame, attrs_len_at)?;
    let attrs_start = attrs_len_at + 2;
    let attrs = frame.get(attrs_start..attrs_start.checked_add(attrs_len)?)?;
    let mut kept: Vec<u8> = Vec::with_capacity(attrs.len());
    let mut dropped = 0usize;
    let mut pos = 0usize;
    while pos < attrs.len() {
        let flags = *attrs.get(pos)?;
        let type_code = *attrs.get(pos + 1)?;
        let (len, value_at) = if flags & EXTENDED_LENGTH != 0 {
            (u16_at(attrs, pos + 2)?, pos + 4)
        } else {
            (usize::from(*attrs.get(pos + 2)?), pos + 3)
        };
        let end = value_at.checked_add(len)?;
        let whole = attrs.get(pos..end)?;
        if length_is_malformed(type_code, len, four_octet_as) {
            dropped += 1;
        } else {
            kept.extend_from_slice(whole);
        }
        pos = end;
    }
    if dropped == 0 {
        return None;
    }
    let kept_len = u16::try_from(kept.len()).ok()?;
    let mut out = Vec::with_capacity(frame.len());
    out.extend_from_slice(frame.get(..attrs_len_at)?);
    out.extend_from_slice(&kept_len.to_be_bytes());
    out.extend_from_slice(&kept);
    out.extend_from_slice(frame.get(attrs_start + attrs_len..)?);
    let total = u16::try_from(out.len()).ok()?;
    out.get_mut(16..18)?.copy_from_slice(&total.to_be_bytes());
    Some((out, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(attrs: &[u8]) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        let len = u16::try_from(HEADER_LEN + 4 + attrs.len() + 5).expect("short");
        m.extend_from_slice(&len.to_be_bytes());
        m.push(2);
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&u16::try_from(attrs.len()).expect("short").to_be_bytes());
        m.extend_from_slice(attrs);
        m.extend_from_slice(&[32, 10, 200, 0, 10]);
        m
    }

    #[test]
    fn drops_only_the_malformed_attribute_and_fixes_the_lengths() {
        let origin = [0x40, 0x01, 0x01, 0x00];
        let bad_communities = [0xc0, 0x08, 0x03, 0xfc, 0x00, 0x00];
        let next_hop = [0x40, 0x03, 0x04, 10, 200, 0, 1];
        let input = update(&[&origin[..], &bad_communities, &next_hop].concat());
        let (out, dropped) = without_malformed_attributes(&input, true).expect("one dropped");
        assert_eq!(dropped, 1);
        assert_eq!(out, update(&[&origin[..], &next_hop].concat()));
    }

    #[test]
    fn extended_length_attributes_are_walked_and_kept() {
        let communities = [0xd0, 0x08, 0x00, 0x04, 0xfc, 0x00, 0x00, 0x64];
        let bad_local_pref = [0x50, 0x05, 0x00, 0x02, 0x00, 0x64];
        let input = update(&[&communities[..], &bad_local_pref].concat());
        let (out, dropped) = without_malformed_attributes(&input, true).expect("one dropped");
        assert_eq!(dropped, 1);
        assert_eq!(out, update(&communities));
    }

    #[test]
    fn well_formed_and_unframed_updates_are_left_to_the_parser() {
        let fine = update(&[0x40, 0x01, 0x01, 0x00]);
        assert_eq!(without_malformed_attributes(&fine, true), None);
        // The last attribute claims more octets than the list holds.
        let overrun = update(&[0x40, 0x01, 0x01, 0x00, 0xc0, 0x08, 0x09, 0, 0]);
        assert_eq!(without_malformed_attributes(&overrun, true), None);
        // Total attribute length past the message.
        let mut long = update(&[0xc0, 0x08, 0x03, 0, 0, 0]);
        long[21..23].copy_from_slice(&400u16.to_be_bytes());
        assert_eq!(without_malformed_attributes(&long, true), None);
    }

    #[test]
    fn aggregator_length_follows_the_negotiated_as_width() {
        let two_octet = update(&[0xc0, 0x07, 0x06, 0xfd, 0xe9, 10, 200, 0, 1]);
        assert_eq!(without_malformed_attributes(&two_octet, false), None);
        assert!(without_malformed_attributes(&two_octet, true).is_some());
    }
}
