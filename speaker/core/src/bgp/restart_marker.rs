//! The restart marker: what a speaker stopping for a restart in place leaves on its node for the
//! next speaker process, so that process knows it is restarting (RFC 4724's Restart State bit)
//! and towards which peers.
//!
//! The marker names the node, the time it was written (seconds since the Unix epoch) and every
//! peer whose session closed with graceful restart, with the restart time announced to it. It
//! is only believed within that restart time: later, the router has flushed our routes already,
//! and a speaker claiming to restart would only mislead it. A marker of another node (a shared
//! directory) or one that cannot be read is ignored.
//!
//! Format, one record per line (text, so an operator can read it):
//! ```text
//! ferrolb-bgp-restart 1
//! node worker-1
//! written 1767225600
//! peer ferrolb-system/router 10.0.0.1 120
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;

/// First line of every marker: format name and version.
const HEADER: &str = "ferrolb-bgp-restart 1";

/// A peer whose session closed with graceful restart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MarkerPeer {
    /// `namespace/name` of the BGPPeer.
    pub name: String,
    /// The peer's address.
    pub address: IpAddr,
    /// Restart time announced to it, seconds.
    pub restart_time: u16,
}

/// The marker's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartMarker {
    /// The node the speaker ran on.
    pub node: String,
    /// When the old process wrote it, seconds since the Unix epoch.
    pub written: u64,
    /// Peers whose session closed with graceful restart.
    pub peers: Vec<MarkerPeer>,
}

/// Why a marker's text was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// The first line is not the format header.
    #[error("not a restart marker (first line is not {HEADER:?})")]
    Header,
    /// A line could not be read.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A required record is missing.
    #[error("no {0} line")]
    Missing(&'static str),
}

impl RestartMarker {
    /// The marker as text.
    pub fn render(&self) -> String {
        let mut s = format!("{HEADER}\nnode {}\nwritten {}\n", self.node, self.written);
        for p in &self.peers {
            s.push_str(&format!(
                "peer {} {} {}\n",
                p.name, p.address, p.restart_time
            ));
        }
        s
    }

    /// Reads a marker's text.
    pub fn parse(text: &str) -> Result<RestartMarker, MarkerError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l.trim() == HEADER => {}
            _ => return Err(MarkerError::Header),
        }
        let mut node = None;
        let mut written = None;
        let mut peers = Vec::new();
        for (i, l) in lines {
            let bad = |reason: String| MarkerError::Line {
                line: i + 1,
                reason,
            };
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["node", name] => node = Some(name.to_string()),
                ["written", secs] => {
                    written = Some(
                        secs.parse::<u64>()
                            .map_err(|e| bad(format!("written {secs:?}: {e}")))?,
                    )
                }
                ["peer", name, address, time] => peers.push(MarkerPeer {
                    name: name.to_string(),
                    address: address
                        .parse()
                        .map_err(|e| bad(format!("peer address {address:?}: {e}")))?,
                    restart_time: time
                        .parse()
                        .map_err(|e| bad(format!("restart time {time:?}: {e}")))?,
                }),
                _ => return Err(bad(format!("unexpected {l:?}"))),
            }
        }
        Ok(RestartMarker {
            node: node.ok_or(MarkerError::Missing("node"))?,
            written: written.ok_or(MarkerError::Missing("written"))?,
            peers,
        })
    }

    /// The peers (`namespace/name`, address) towards which a speaker on `node` starting at
    /// `now` (seconds since the Unix epoch) is restarting: those whose restart time has not
    /// run out since the marker was written. Empty for another node's marker, and for one
    /// written in the future (a clock that jumped back cannot tell how long ago it was).
    pub fn restarting_peers(&self, node: &str, now: u64) -> BTreeSet<(String, IpAddr)> {
        if self.node != node || now < self.written {
            return BTreeSet::new();
        }
        let age = now - self.written;
        self.peers
            .iter()
            .filter(|p| age < u64::from(p.restart_time))
            .map(|p| (p.name.clone(), p.address))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> RestartMarker {
        RestartMarker {
            node: "worker-1".into(),
            written: 1_767_225_600,
            peers: vec![
                MarkerPeer {
                    name: "ferrolb-system/router".into(),
                    address: "10.0.0.1".parse().expect("ip"),
                    restart_time: 120,
                },
                MarkerPeer {
                    name: "ferrolb-system/router-v6".into(),
                    address: "fd00::1".parse().expect("ip"),
                    restart_time: 30,
                },
            ],
        }
    }

    #[test]
    fn renders_readable_text_and_parses_it_back() {
        let m = marker();
        let text = m.render();
        assert_eq!(
            text,
            "ferrolb-bgp-restart 1\nnode worker-1\nwritten 1767225600\n\
             peer ferrolb-system/router 10.0.0.1 120\npeer ferrolb-system/router-v6 fd00::1 30\n"
        );
        assert_eq!(RestartMarker::parse(&text), Ok(m));
    }

    #[test]
    fn valid_only_within_each_peers_restart_time() {
        let m = marker();
        let v4 = (
            "ferrolb-system/router".to_string(),
            "10.0.0.1".parse().expect("ip"),
        );
        let v6 = (
            "ferrolb-system/router-v6".to_string(),
            "fd00::1".parse().expect("ip"),
        );
        let at = |age: u64| m.restarting_peers("worker-1", m.written + age);
        assert_eq!(at(0), BTreeSet::from([v4.clone(), v6.clone()]));
        assert_eq!(at(29), BTreeSet::from([v4.clone(), v6]));
        assert_eq!(at(30), BTreeSet::from([v4.clone()]));
        assert_eq!(at(119), BTreeSet::from([v4]));
        assert!(at(120).is_empty());
        assert!(at(86_400).is_empty());
    }

    #[test]
    fn another_nodes_marker_or_one_from_the_future_is_not_believed() {
        let m = marker();
        assert!(m.restarting_peers("worker-2", m.written + 1).is_empty());
        assert!(m.restarting_peers("worker-1", m.written - 1).is_empty());
    }

    #[test]
    fn damaged_markers_are_errors_naming_the_line() {
        assert_eq!(RestartMarker::parse(""), Err(MarkerError::Header));
        assert_eq!(
            RestartMarker::parse("{\"node\": \"x\"}"),
            Err(MarkerError::Header)
        );
        assert_eq!(
            RestartMarker::parse("ferrolb-bgp-restart 1\nwritten 5\n"),
            Err(MarkerError::Missing("node"))
        );
        assert_eq!(
            RestartMarker::parse("ferrolb-bgp-restart 1\nnode a\n"),
            Err(MarkerError::Missing("written"))
        );
        let e = RestartMarker::parse("ferrolb-bgp-restart 1\nnode a\nwritten soon\n")
            .expect_err("bad time");
        assert!(e.to_string().starts_with("line 3: written \"soon\""), "{e}");
        let e = RestartMarker::parse("ferrolb-bgp-restart 1\nnode a\nwritten 1\npeer p x 1\n")
            .expect_err("bad address");
        assert!(
            e.to_string().starts_with("line 4: peer address \"x\""),
            "{e}"
        );
        let e = RestartMarker::parse(
            "ferrolb-bgp-restart 1\nnode a\nwritten 1\npeer p 10.0.0.1 9999999\n",
        )
        .expect_err("bad time");
        assert!(e.to_string().starts_with("line 4: restart time"), "{e}");
        let e = RestartMarker::parse("ferrolb-bgp-restart 1\nnode a\nextra words here\n")
            .expect_err("unknown");
        assert_eq!(e.to_string(), "line 3: unexpected \"extra words here\"");
    }
}
