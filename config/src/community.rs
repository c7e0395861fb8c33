//! BGP community values: `AA:NN` (RFC 1997) and `large:A:B:C` (RFC 8092).

use crate::model::CommunityValue;

/// What the error messages say is accepted.
pub const ACCEPTED: &str =
    "AA:NN with two numbers 0-65535, or large:A:B:C with three numbers 0-4294967295";

/// Parses a literal community value.
pub fn parse_community(text: &str) -> Result<CommunityValue, String> {
    let s = text.trim();
    if let Some(rest) = s.strip_prefix("large:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let nums: Option<Vec<u32>> = parts.iter().map(|p| p.parse::<u32>().ok()).collect();
        return match nums.as_deref() {
            Some([a, b, c]) => Ok(CommunityValue::Large(*a, *b, *c)),
            _ => Err(format!(
                "{text:?} is not a valid large community; expected {ACCEPTED}"
            )),
        };
    }
    let parts: Vec<&str> = s.split(':').collect();
    let nums: Option<Vec<u16>> = parts.iter().map(|p| p.parse::<u16>().ok()).collect();
    match nums.as_deref() {
        Some([aa, nn]) => Ok(CommunityValue::Standard(
            u32::from(*aa) << 16 | u32::from(*nn),
        )),
        _ => Err(format!(
            "{text:?} is not a valid community; expected {ACCEPTED}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(
            parse_community("65535:65281"),
            Ok(CommunityValue::Standard(0xffff_ff01))
        );
        assert_eq!(
            parse_community("large:64512:1:1"),
            Ok(CommunityValue::Large(64512, 1, 1))
        );
    }

    #[test]
    fn rejects_out_of_range_and_malformed() {
        assert_eq!(
            parse_community("65536:1").expect_err("16-bit"),
            "\"65536:1\" is not a valid community; expected AA:NN with two numbers 0-65535, or \
             large:A:B:C with three numbers 0-4294967295"
        );
        assert!(
            parse_community("large:1:2")
                .expect_err("two parts")
                .contains("not a valid large community")
        );
        assert!(parse_community("large:1:2:4294967296").is_err());
        assert!(parse_community("1:2:3").is_err());
        assert!(parse_community("a:b").is_err());
    }

    proptest! {
        #[test]
        fn display_round_trips(a in any::<u16>(), n in any::<u16>(), x in any::<u32>(), y in any::<u32>(), z in any::<u32>()) {
            let std = CommunityValue::Standard(u32::from(a) << 16 | u32::from(n));
            prop_assert_eq!(parse_community(&std.to_string()), Ok(std));
            let large = CommunityValue::Large(x, y, z);
            prop_assert_eq!(parse_community(&large.to_string()), Ok(large));
        }
    }
}
