//! Label sets shared by the speaker's metrics.

use prometheus_client::encoding::EncodeLabelSet;

/// Label of per-mode metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// `layer2` or `bgp`.
    pub mode: String,
}

/// Label of the addresses announced nowhere.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotAnnouncedLabels {
    /// A `NotAnnouncedReason` code: `NoPool`, `NoAdvertisement`, `ModeDisabled`,
    /// `NoMatchingAdvertisement`, `SharedIPWithServiceSelectors`, `NoServingEndpoint` or
    /// `NoEligibleNode`.
    pub reason: String,
}

/// Label of per-family metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabels {
    /// `ipv4` or `ipv6`.
    pub family: String,
}

impl FamilyLabels {
    pub(crate) fn ipv4() -> Self {
        Self {
            family: "ipv4".into(),
        }
    }

    pub(crate) fn ipv6() -> Self {
        Self {
            family: "ipv6".into(),
        }
    }
}

/// Label of per-peer metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// `namespace/name` of the BGPPeer.
    pub peer: String,
}

/// Labels of NOTIFICATION counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `namespace/name` of the BGPPeer.
    pub peer: String,
    /// `sent` or `received`.
    pub direction: String,
    /// Error code (RFC 4271 §4.5), e.g. `6` for Cease.
    pub code: String,
    /// Error subcode, e.g. `2` for Administrative Shutdown.
    pub subcode: String,
}

/// Label of per-interface metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InterfaceLabels {
    /// Interface name.
    pub interface: String,
}
