//! Which parts of the desired announcements a pass changed. The plan is still whole (the
//! executor could apply it from nothing); these flags let the executor skip handing a part
//! that did not change to whatever consumes it — at 50,000 Services rebuilding the BGP status
//! list, the per-address metrics and the owner table on every EndpointSlice change would cost
//! more than the pass.

/// One flag per part of [`crate::desired::Desired`] the executor hands on; `true`: it may differ
/// from the one of the plans before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesiredChanges {
    pub layer2: bool,
    pub l2_standby: bool,
    pub l2_successor_of: bool,
    pub l2_no_carrier: bool,
    pub bgp: bool,
    pub not_announced: bool,
}

impl DesiredChanges {
    /// Everything may have changed (a first plan, or one decided from nothing).
    pub const ALL: Self = Self {
        layer2: true,
        l2_standby: true,
        l2_successor_of: true,
        l2_no_carrier: true,
        bgp: true,
        not_announced: true,
    };

    /// Nothing changed.
    pub const NONE: Self = Self {
        layer2: false,
        l2_standby: false,
        l2_successor_of: false,
        l2_no_carrier: false,
        bgp: false,
        not_announced: false,
    };

    /// Adds the changes of `other` (a later pass's) to these.
    pub fn merge(&mut self, other: Self) {
        self.layer2 |= other.layer2;
        self.l2_standby |= other.l2_standby;
        self.l2_successor_of |= other.l2_successor_of;
        self.l2_no_carrier |= other.l2_no_carrier;
        self.bgp |= other.bgp;
        self.not_announced |= other.not_announced;
    }

    /// Whether any announced address (layer 2 or BGP) or the addresses announced by no mode
    /// changed: what the per-address metrics read.
    pub fn announced(&self) -> bool {
        self.layer2 || self.bgp || self.not_announced
    }
}

impl Default for DesiredChanges {
    fn default() -> Self {
        Self::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_every_change() {
        let mut c = DesiredChanges::NONE;
        assert!(!c.announced());
        c.merge(DesiredChanges {
            bgp: true,
            ..DesiredChanges::NONE
        });
        c.merge(DesiredChanges {
            l2_standby: true,
            ..DesiredChanges::NONE
        });
        assert!(c.bgp && c.l2_standby && !c.layer2);
        assert!(c.announced());
        c.merge(DesiredChanges::ALL);
        assert_eq!(c, DesiredChanges::ALL);
    }
}
