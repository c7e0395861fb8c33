//! Owner → successor heartbeats: layer 2 failover in tens of milliseconds, before the gossip
//! can confirm a death.
//!
//! SWIM ([`super`]) needs a failed probe round and a suspicion timeout to declare a speaker
//! down (about 0.25 s with the default timers) — slower than VRRP at its fastest advert
//! interval. Only one speaker per address needs to know sooner: the one that would own it
//! next (the *successor*, second in the election's ranking). So each speaker asks the owners
//! it is successor to for heartbeats ([`Message::Watch`], repeated every
//! [`HeartbeatTimers::subscribe_period`]); an owner sends [`Message::Beat`] every
//! [`HeartbeatTimers::interval`] to every speaker whose request has not expired. When an
//! owner that has been beating falls silent for [`HeartbeatTimers::dead_after`], the
//! successor *presumes* it down: its published alive set leaves that owner out, the election
//! moves the owner's addresses to it, and it sends gratuitous ARP / unsolicited NA at once.
//! Traffic is one small datagram per interval per (owner, successor) pair, bounded by the
//! number of other speakers, and nothing when no address is announced in layer 2.
//!
//! # One source of truth, with a deadline
//!
//! The presumption is local to the successor and provisional; the gossip stays the source of
//! truth every speaker shares:
//! - the gossip declares the owner down → the presumption is simply dropped (the shared view
//!   now says the same);
//! - a beat from the owner arrives again (it was frozen, or beats were lost) → the presumption
//!   is revoked at once and the successor asks the owner to reclaim ([`Message::Reclaim`]):
//!   the owner repeats its gratuitous announcements so caches point back to it;
//! - neither within [`HeartbeatTimers::confirm_within`] (beats lost on a path the gossip still
//!   gets through) → revoked the same way, and the owner is not presumed down again until it
//!   has been heard beating again.
//!
//! A false presumption therefore costs two short moves of the address, as a false SWIM suspicion
//! does, bounded by `confirm_within`. A presumption that turns out to have been a hiccup — the same
//! process (beats carry a boot stamp) beats again within twice the threshold of its last beat — or
//! that the gossip does not confirm in time doubles that owner's silence threshold (up to 8 ×,
//! 160 ms by default) for a minute, so a speaker on a host that stalls now and then is not moved back
//! and forth in a burst; a restart or a longer outage does not. A speaker only presumes down a
//! member the gossip still sees alive and that has beaten since it was last presumed down; a peer
//! that never beats (heartbeats disabled, an older version) is never presumed down. Owners that
//! fall silent together (within one interval of each other) are not presumed down at all: that
//! is the signature of a hiccup on the watching side, and the gossip judges it instead.
//!
//! [`Watchdog`] holds the whole protocol as a state machine over explicit instants; the
//! membership's thread feeds it datagrams and timers (`ferrolb_speaker::membership::Membership`).

use crate::layer2::carrier::LinkReport;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Timers of the heartbeats. [`HeartbeatTimers::default`]: a beat every 5 ms, presumed down
/// after 4 missed (20 ms), revoked unless the gossip confirms within 1 s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatTimers {
    /// How often an owner beats to each subscriber.
    pub interval: Duration,
    /// How many intervals without a beat make the owner presumed down.
    pub misses: u32,
    /// How long a presumption may stand without the gossip confirming it.
    pub confirm_within: Duration,
    /// How often a successor repeats its request for beats (requests expire after four).
    pub subscribe_period: Duration,
}

impl Default for HeartbeatTimers {
    fn default() -> Self {
        HeartbeatTimers {
            // VRRP's fastest advert interval is 10 ms with a down interval of three adverts
            // plus skew (about 35 ms); 4 × 5 ms detects sooner and still rides out three lost
            // beats in a row. At 200 datagrams of about 60 bytes per second per pair the cost is
            // negligible.
            interval: Duration::from_millis(5),
            misses: 4,
            // The default gossip confirms a death in about 0.25 s (0.3 s worst case).
            confirm_within: Duration::from_secs(1),
            subscribe_period: Duration::from_millis(500),
        }
    }
}

impl HeartbeatTimers {
    /// Silence after which an owner is presumed down.
    pub fn dead_after(&self) -> Duration {
        self.interval.saturating_mul(self.misses)
    }

    /// How long a request for beats stands.
    pub fn subscription_lifetime(&self) -> Duration {
        self.subscribe_period.saturating_mul(4)
    }

    /// Checks the timers are usable.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.interval.is_zero() || self.subscribe_period.is_zero() {
            return Err("heartbeat interval and subscribe period must be positive");
        }
        if self.misses < 2 {
            return Err(
                "heartbeat misses must be at least 2 (one lost datagram must not fail over)",
            );
        }
        if self.confirm_within <= self.dead_after().saturating_mul(1 << MAX_BACKOFF_DOUBLINGS) {
            return Err(
                "heartbeat confirmation window must exceed the longest silence that presumes a speaker down (8 × interval × misses)",
            );
        }
        Ok(())
    }
}

/// A heartbeat datagram's payload (inside the authenticated envelope, [`super::auth`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// "I, this node, am alive", from an owner to a subscriber, with the sender's boot stamp
    /// (it changes when the speaker restarts: a beat after a presumption tells a process that
    /// was only late from a new one).
    Beat(String, u64),
    /// "Send me beats", from a successor to an owner.
    Watch(String),
    /// "I stopped answering for you: announce your addresses again", from a successor whose
    /// presumption was revoked to the owner.
    Reclaim(String),
    /// "This node's speaker is restarting in place: hold its addresses for this many
    /// milliseconds", from a departing speaker to every member (see
    /// [`super::restart_hold`]).
    Restarting(String, u32),
    /// "These are the interfaces this node can announce on, with their carrier", from every
    /// speaker to every member, on change and every [`LINKS_REFRESH`] (see
    /// [`crate::layer2::carrier`]): node, boot stamp, a sequence number that grows with every
    /// report of that process, and the links. Speakers of a version without this message drop
    /// it as an unknown type, and their peers count them as having carrier.
    Links(LinksReport),
}

/// The payload of [`Message::Links`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinksReport {
    /// Sending node.
    pub node: String,
    /// The sender's boot stamp (as in [`Message::Beat`]).
    pub boot: u64,
    /// Grows with every report of one process: a reordered older report is ignored.
    pub seq: u32,
    /// The interfaces the sender can announce on.
    pub links: Vec<LinkReport>,
}

impl LinksReport {
    /// Whether this report replaces `older` (the last one kept from the same node): another
    /// process (its boot stamp differs: comparing stamps would trust the clock across a
    /// restart, and a clock set back would then freeze the old report), or a later report of
    /// the same one. A report of a dead process arriving after its successor's stands at most
    /// until the successor's next refresh ([`LINKS_REFRESH`]).
    pub fn supersedes(&self, older: &LinksReport) -> bool {
        self.boot != older.boot || self.seq > older.seq
    }
}

/// How often a speaker repeats its [`Message::Links`] report when nothing changed: a member
/// that joined meanwhile, or a lost datagram, is caught up within this.
pub const LINKS_REFRESH: Duration = Duration::from_secs(1);
/// Most links one report carries: interface names are at most 15 bytes, so the report stays
/// well inside one datagram.
pub const MAX_LINKS: usize = 48;
const LINK_CARRIER: u8 = 1;
const LINK_AUTOMATIC: u8 = 2;

/// Why a heartbeat payload was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No bytes.
    #[error("empty heartbeat message")]
    Empty,
    /// The first byte names no message.
    #[error("unknown heartbeat message type {0}")]
    UnknownType(u8),
    /// The node name is empty, too long or not UTF-8.
    #[error("heartbeat message with an invalid node name")]
    BadName,
    /// A links report is cut short, has too many links or an invalid interface name.
    #[error("malformed links report")]
    BadLinks,
}

const BEAT: u8 = 1;
const WATCH: u8 = 2;
const RECLAIM: u8 = 3;
const RESTARTING: u8 = 4;
const LINKS: u8 = 5;
/// Longest interface name (`IFNAMSIZ` - 1).
const MAX_IFNAME: usize = 15;
/// Longest Kubernetes node name (a DNS subdomain).
const MAX_NAME: usize = 253;

impl Message {
    /// Wire form: one type byte, for a beat the boot stamp (8 bytes, big-endian), for a
    /// restart the hold in milliseconds (4 bytes, big-endian), then the sender's node name in
    /// UTF-8.
    ///
    /// A links report: type byte, boot stamp (8 bytes), sequence number (4 bytes), name length
    /// (1 byte), name, link count (1 byte), then per link a flags byte (1: carrier, 2: used by
    /// the automatic choice), the interface name's length (1 byte) and the name.
    pub fn encode(&self) -> Vec<u8> {
        if let Message::Links(report) = self {
            return encode_links(report);
        }
        let (kind, node, extra) = match self {
            Message::Beat(n, boot) => (BEAT, n, boot.to_be_bytes().to_vec()),
            Message::Watch(n) => (WATCH, n, Vec::new()),
            Message::Reclaim(n) => (RECLAIM, n, Vec::new()),
            Message::Restarting(n, hold_ms) => (RESTARTING, n, hold_ms.to_be_bytes().to_vec()),
            Message::Links(r) => (LINKS, &r.node, Vec::new()),
        };
        let mut out = Vec::with_capacity(9 + node.len());
        out.push(kind);
        out.extend_from_slice(&extra);
        out.extend_from_slice(node.as_bytes());
        out
    }

    /// Parses [`Message::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if kind == LINKS {
            return decode_links(rest).map(Message::Links);
        }
        let (boot, name) = match kind {
            BEAT => {
                let (stamp, name) = rest.split_at_checked(8).ok_or(DecodeError::BadName)?;
                let stamp: [u8; 8] = stamp.try_into().map_err(|_| DecodeError::BadName)?;
                (u64::from_be_bytes(stamp), name)
            }
            RESTARTING => {
                let (hold, name) = rest.split_at_checked(4).ok_or(DecodeError::BadName)?;
                let hold: [u8; 4] = hold.try_into().map_err(|_| DecodeError::BadName)?;
                (u64::from(u32::from_be_bytes(hold)), name)
            }
            _ => (0, rest),
        };
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(DecodeError::BadName);
        }
        let node = std::str::from_utf8(name)
            .map_err(|_| DecodeError::BadName)?
            .to_string();
        match kind {
            BEAT => Ok(Message::Beat(node, boot)),
            WATCH => Ok(Message::Watch(node)),
            RECLAIM => Ok(Message::Reclaim(node)),
            RESTARTING => Ok(Message::Restarting(
                node,
                u32::try_from(boot).map_err(|_| DecodeError::BadName)?,
            )),
            other => Err(DecodeError::UnknownType(other)),
        }
    }
}

fn encode_links(report: &LinksReport) -> Vec<u8> {
    let mut out = vec![LINKS];
    out.extend_from_slice(&report.boot.to_be_bytes());
    out.extend_from_slice(&report.seq.to_be_bytes());
    let name = report.node.as_bytes();
    let name = name.get(..MAX_NAME).unwrap_or(name);
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name);
    let links: Vec<&LinkReport> = report
        .links
        .iter()
        .filter(|l| !l.name.is_empty() && l.name.len() <= MAX_IFNAME)
        .take(MAX_LINKS)
        .collect();
    out.push(u8::try_from(links.len()).unwrap_or(u8::MAX));
    for l in links {
        let mut flags = 0;
        if l.carrier {
            flags |= LINK_CARRIER;
        }
        if l.automatic {
            flags |= LINK_AUTOMATIC;
        }
        out.push(flags);
        out.push(u8::try_from(l.name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(l.name.as_bytes());
    }
    out
}

/// Takes `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    let (head, tail) = rest.split_at_checked(n).ok_or(DecodeError::BadLinks)?;
    *rest = tail;
    Ok(head)
}

fn take_u8(rest: &mut &[u8]) -> Result<u8, DecodeError> {
    take(rest, 1).map(|b| b.first().copied().unwrap_or_default())
}

fn decode_links(mut rest: &[u8]) -> Result<LinksReport, DecodeError> {
    let boot: [u8; 8] = take(&mut rest, 8)?
        .try_into()
        .map_err(|_| DecodeError::BadLinks)?;
    let seq: [u8; 4] = take(&mut rest, 4)?
        .try_into()
        .map_err(|_| DecodeError::BadLinks)?;
    let name_len = usize::from(take_u8(&mut rest)?);
    if name_len == 0 || name_len > MAX_NAME {
        return Err(DecodeError::BadName);
    }
    let node = std::str::from_utf8(take(&mut rest, name_len)?)
        .map_err(|_| DecodeError::BadName)?
        .to_string();
    let count = usize::from(take_u8(&mut rest)?);
    if count > MAX_LINKS {
        return Err(DecodeError::BadLinks);
    }
    let mut links = Vec::with_capacity(count);
    for _ in 0..count {
        let flags = take_u8(&mut rest)?;
        let len = usize::from(take_u8(&mut rest)?);
        if len == 0 || len > MAX_IFNAME {
            return Err(DecodeError::BadLinks);
        }
        let name = std::str::from_utf8(take(&mut rest, len)?).map_err(|_| DecodeError::BadLinks)?;
        links.push(LinkReport {
            name: name.to_string(),
            carrier: flags & LINK_CARRIER != 0,
            automatic: flags & LINK_AUTOMATIC != 0,
        });
    }
    if !rest.is_empty() {
        return Err(DecodeError::BadLinks);
    }
    Ok(LinksReport {
        node,
        boot: u64::from_be_bytes(boot),
        seq: u32::from_be_bytes(seq),
        links,
    })
}

/// What a step of the [`Watchdog`] asks of its caller besides sending datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// The set of presumed-down members changed: publish the alive set again.
    pub alive_changed: bool,
    /// A successor asked us to announce our addresses again.
    pub reclaim: bool,
    /// A member was presumed down in this step.
    pub presumed: bool,
    /// A presumption was revoked in this step (beat heard again, or not confirmed in time).
    pub revoked: bool,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.alive_changed |= other.alive_changed;
        self.reclaim |= other.reclaim;
        self.presumed |= other.presumed;
        self.revoked |= other.revoked;
    }
}

/// Datagrams a step wants sent.
pub type Outbox = Vec<(SocketAddr, Message)>;

#[derive(Clone, Debug)]
struct Watched {
    addr: SocketAddr,
    last_beat: Instant,
    /// Boot stamp of the last beat.
    boot: Option<u64>,
    /// Heard beating since it was watched or last presumed down: only then may silence count.
    armed: bool,
}

#[derive(Clone, Debug)]
struct Presumed {
    addr: SocketAddr,
    since: Instant,
    /// Boot stamp of the process presumed down.
    boot: Option<u64>,
    /// Its last beat before the silence.
    last_beat: Instant,
}

/// How many times the silence threshold of an owner doubles after presumptions of it were
/// revoked: 20 ms → 40, 80, at most 160 ms (still below the gossip's ~250 ms).
pub const MAX_BACKOFF_DOUBLINGS: u32 = 3;
/// How long a doubled threshold stands after the last revoked presumption.
pub const BACKOFF_HOLD: Duration = Duration::from_secs(60);

/// A raised silence threshold for one owner: presumptions of it were wrong lately (its
/// speaker, or the path, stalls now and then), so waiting longer costs less than moving its
/// addresses back and forth.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    doublings: u32,
    until: Instant,
}

/// The heartbeat protocol of one speaker: beats it owes its subscribers, owners it watches,
/// and owners it presumes down.
#[derive(Debug)]
pub struct Watchdog {
    me: String,
    /// Our boot stamp, sent in every beat.
    boot: u64,
    timers: HeartbeatTimers,
    /// Subscribers' addresses and when their request expires.
    subscribers: BTreeMap<SocketAddr, Instant>,
    watched: BTreeMap<String, Watched>,
    presumed: BTreeMap<String, Presumed>,
    backoff: BTreeMap<String, Backoff>,
    next_beat: Option<Instant>,
    next_subscribe: Option<Instant>,
    /// Whether the last tick found several owners silent together (logged once an episode).
    silent_together: bool,
}

impl Watchdog {
    /// A watchdog for node `me` whose process started with stamp `boot` (any value that
    /// differs between restarts), watching nobody and beating to nobody.
    pub fn new(me: impl Into<String>, boot: u64, timers: HeartbeatTimers) -> Self {
        Watchdog {
            me: me.into(),
            boot,
            timers,
            subscribers: BTreeMap::new(),
            watched: BTreeMap::new(),
            presumed: BTreeMap::new(),
            backoff: BTreeMap::new(),
            next_beat: None,
            next_subscribe: None,
            silent_together: false,
        }
    }

    /// The timers.
    pub fn timers(&self) -> &HeartbeatTimers {
        &self.timers
    }

    /// Members presumed down (to leave out of the published alive set).
    pub fn presumed_down(&self) -> impl Iterator<Item = &str> {
        self.presumed.keys().map(String::as_str)
    }

    /// Nodes watched now.
    pub fn watched(&self) -> impl Iterator<Item = &str> {
        self.watched.keys().map(String::as_str)
    }

    /// Replaces the owners to watch (node → gossip address). A newly watched owner is asked
    /// for beats at once; presumptions stand whatever the new set (the owner presumed down
    /// is, after the takeover, no longer an owner we are successor to).
    pub fn set_watched(
        &mut self,
        targets: BTreeMap<String, SocketAddr>,
        now: Instant,
        out: &mut Outbox,
    ) {
        self.watched.retain(|node, _| targets.contains_key(node));
        for (node, addr) in targets {
            if node == self.me {
                continue;
            }
            if self.watched.get(&node).is_some_and(|w| w.addr == addr) {
                continue;
            }
            // New, or moved to another address (a restarted speaker): not armed until it
            // beats from there.
            let fresh = Watched {
                addr,
                last_beat: now,
                boot: None,
                armed: false,
            };
            self.watched.insert(node, fresh);
            out.push((addr, Message::Watch(self.me.clone())));
        }
        self.reschedule_requests(now);
    }

    /// Requests for beats repeat while anyone is watched or presumed down (a presumed owner
    /// that restarts must hear from us to beat again, even once nothing else is watched).
    fn reschedule_requests(&mut self, now: Instant) {
        let idle = self.watched.is_empty() && self.presumed.is_empty();
        self.next_subscribe = match (idle, self.next_subscribe) {
            (true, _) => None,
            (false, Some(at)) => Some(at),
            (false, None) => Some(now + self.timers.subscribe_period),
        };
    }

    /// Handles a datagram from `from`.
    pub fn on_message(
        &mut self,
        from: SocketAddr,
        message: Message,
        now: Instant,
        out: &mut Outbox,
    ) -> Effects {
        let mut effects = Effects::default();
        match message {
            Message::Watch(_) => {
                let expiry = now + self.timers.subscription_lifetime();
                if self.subscribers.insert(from, expiry).is_none() {
                    // Beat at once so the new subscriber is armed without waiting a period.
                    out.push((from, Message::Beat(self.me.clone(), self.boot)));
                }
                self.next_beat.get_or_insert(now + self.timers.interval);
            }
            Message::Beat(node, boot) => {
                if let Some(w) = self.watched.get_mut(&node)
                    && w.addr == from
                {
                    w.last_beat = now;
                    w.armed = true;
                    w.boot = Some(boot);
                }
                if let Some(p) = self.presumed.get(&node).filter(|p| p.addr == from) {
                    let restarted = p.boot.is_some_and(|b| b != boot);
                    let silence = now.saturating_duration_since(p.last_beat);
                    // Back after less than twice the threshold: a hiccup (a stalled process, a
                    // burst of loss), not an outage — the kind that comes in bursts.
                    let hiccup = silence < self.dead_after_for(&node, now).saturating_mul(2);
                    self.presumed.remove(&node);
                    if restarted || !hiccup {
                        // The presumption was right: the speaker restarted, or was cut off for
                        // a while and is back.
                        tracing::info!(
                            %node,
                            restarted,
                            silent_ms = silence.as_millis() as u64,
                            "a speaker presumed down beats again; asking it to reclaim its addresses"
                        );
                    } else {
                        let threshold = self.back_off(&node, now);
                        tracing::warn!(
                            %node,
                            threshold_ms = threshold.as_millis() as u64,
                            "heartbeats resumed: no longer presuming the speaker down; asking it to reclaim its addresses, and waiting longer for its beats from now on"
                        );
                    }
                    out.push((from, Message::Reclaim(self.me.clone())));
                    effects.alive_changed = true;
                    effects.revoked = true;
                }
            }
            Message::Reclaim(node) => {
                tracing::info!(%node, "a successor gave our addresses back: announcing them again");
                effects.reclaim = true;
            }
            // A restarting speaker stops beating on purpose; the membership holds its
            // addresses (`restart_hold`) and drops any presumption about it.
            Message::Restarting(node, _) => {
                if self.presumed.remove(&node).is_some() {
                    effects.alive_changed = true;
                }
            }
            // Carrier reports are the membership's, not the watchdog's.
            Message::Links(_) => {}
        }
        effects
    }

    /// Ends the presumption of `node` without backing off (it rejoined the gossip as a new
    /// process); whether there was one.
    pub fn forget_presumption(&mut self, node: &str) -> bool {
        self.presumed.remove(node).is_some()
    }

    /// Raises the silence threshold of `node` after a revoked presumption; returns the new one.
    fn back_off(&mut self, node: &str, now: Instant) -> Duration {
        let doublings = (self.doublings(node, now) + 1).min(MAX_BACKOFF_DOUBLINGS);
        self.backoff.insert(
            node.to_string(),
            Backoff {
                doublings,
                until: now + BACKOFF_HOLD,
            },
        );
        self.timers.dead_after().saturating_mul(1 << doublings)
    }

    /// The silence after which `node` is presumed down at `now`.
    fn dead_after_for(&self, node: &str, now: Instant) -> Duration {
        self.timers
            .dead_after()
            .saturating_mul(1 << self.doublings(node, now))
    }

    /// How many times `node`'s threshold is doubled at `now` (0 without a standing backoff).
    fn doublings(&self, node: &str, now: Instant) -> u32 {
        self.backoff
            .get(node)
            .filter(|b| b.until > now)
            .map_or(0, |b| b.doublings)
    }

    /// Does what is due at `now`: beats, repeated requests, presumptions and revocations.
    /// `gossip_alive` is the gossip's own alive set (without presumptions). `late` is how long
    /// after its deadline the caller got to run: silence heard while this speaker itself was
    /// off the CPU proves nothing (when a whole host stalls, everyone's beats are late
    /// together), so a tick more than one interval late presumes nobody down and gives the
    /// owners one more interval instead.
    pub fn tick(
        &mut self,
        now: Instant,
        late: Duration,
        gossip_alive: &BTreeSet<String>,
        out: &mut Outbox,
    ) -> Effects {
        let mut effects = Effects::default();
        self.subscribers.retain(|_, expiry| *expiry > now);
        if let Some(at) = self.next_beat
            && at <= now
        {
            for addr in self.subscribers.keys() {
                out.push((*addr, Message::Beat(self.me.clone(), self.boot)));
            }
            let next = at + self.timers.interval;
            // After a stall, resume the rhythm from now rather than beat in a burst.
            let next = if next <= now {
                now + self.timers.interval
            } else {
                next
            };
            self.next_beat = (!self.subscribers.is_empty()).then_some(next);
        }
        if let Some(at) = self.next_subscribe
            && at <= now
        {
            // Presumed-down owners are asked too: a restarted one beats at once and is
            // welcomed back without waiting for the confirmation window.
            let targets = self
                .watched
                .values()
                .map(|w| w.addr)
                .chain(self.presumed.values().map(|p| p.addr))
                .collect::<BTreeSet<_>>();
            for addr in targets {
                out.push((addr, Message::Watch(self.me.clone())));
            }
            self.next_subscribe = None;
        }
        self.backoff.retain(|_, b| b.until > now);
        let thresholds: BTreeMap<String, Duration> = self
            .watched
            .keys()
            .map(|n| (n.clone(), self.dead_after_for(n, now)))
            .collect();
        let stalled = late > self.timers.interval || self.silent_together(now, &thresholds);
        for (node, w) in &mut self.watched {
            let dead_after = thresholds
                .get(node)
                .copied()
                .unwrap_or_else(|| self.timers.dead_after());
            if !w.armed || now.saturating_duration_since(w.last_beat) < dead_after {
                continue;
            }
            if stalled {
                w.last_beat = (now + self.timers.interval)
                    .checked_sub(dead_after)
                    .unwrap_or(w.last_beat)
                    .max(w.last_beat);
                continue;
            }
            w.armed = false;
            if gossip_alive.contains(node) && !self.presumed.contains_key(node) {
                tracing::warn!(
                    %node,
                    silent_ms = now.saturating_duration_since(w.last_beat).as_millis() as u64,
                    "no heartbeat: presuming the speaker down and taking over its addresses before the gossip confirms"
                );
                self.presumed.insert(
                    node.clone(),
                    Presumed {
                        addr: w.addr,
                        since: now,
                        boot: w.boot,
                        last_beat: w.last_beat,
                    },
                );
                effects.merge(Effects {
                    alive_changed: true,
                    presumed: true,
                    ..Effects::default()
                });
            }
        }
        let confirm_within = self.timers.confirm_within;
        let me = &self.me;
        let mut unconfirmed = Vec::new();
        self.presumed.retain(|node, p| {
            if !gossip_alive.contains(node) {
                tracing::info!(%node, "the gossip confirms the speaker presumed down is down");
                false
            } else if now.saturating_duration_since(p.since) >= confirm_within {
                tracing::warn!(
                    %node,
                    "the gossip still sees the speaker presumed down alive: giving its addresses back (heartbeats lost on a path the gossip gets through?)"
                );
                out.push((p.addr, Message::Reclaim(me.clone())));
                effects.alive_changed = true;
                effects.revoked = true;
                unconfirmed.push(node.clone());
                false
            } else {
                true
            }
        });
        for node in unconfirmed {
            self.back_off(&node, now);
        }
        self.reschedule_requests(now);
        effects
    }

    /// Whether two or more watched owners fell silent together: one past its threshold and
    /// another within one interval of its own. Owners on different hosts rarely die in the
    /// same few milliseconds; beats missing from several at once far more often mean this host
    /// or its network path hiccupped (CPU starvation, a burst of loss). Presuming them all
    /// down would move every address they own here and back again, so the heartbeats leave
    /// such silences to the gossip, which judges them with probes through other members (a
    /// real double failure is then taken over in the gossip's time, about 0.25 s).
    fn silent_together(&mut self, now: Instant, thresholds: &BTreeMap<String, Duration>) -> bool {
        let interval = self.timers.interval;
        let mut overdue = 0usize;
        let mut lagging = 0usize;
        for (node, w) in &self.watched {
            if !w.armed {
                continue;
            }
            let dead_after = thresholds
                .get(node)
                .copied()
                .unwrap_or_else(|| self.timers.dead_after());
            let silence = now.saturating_duration_since(w.last_beat);
            if silence >= dead_after {
                overdue += 1;
            }
            if silence + interval >= dead_after {
                lagging += 1;
            }
        }
        let together = overdue >= 1 && lagging >= 2;
        if together && !self.silent_together {
            tracing::info!(
                owners = lagging,
                "several owners' heartbeats stopped at once: leaving the verdict to the gossip"
            );
        }
        self.silent_together = together;
        together
    }

    /// When [`Watchdog::tick`] has something to do next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        // Thresholds as they stood at the last beat: a backoff that ends before the deadline
        // delays that presumption to the deadline, by at most the raised threshold.
        let silences = self
            .watched
            .iter()
            .filter(|(_, w)| w.armed)
            .map(|(n, w)| w.last_beat + self.dead_after_for(n, w.last_beat));
        let confirmations = self
            .presumed
            .values()
            .map(|p| p.since + self.timers.confirm_within);
        let expiries = self.subscribers.values().copied();
        [self.next_beat, self.next_subscribe]
            .into_iter()
            .flatten()
            .chain(silences)
            .chain(confirmations)
            .chain(expiries)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OWNER: &str = "owner";
    const OWNER_BOOT: u64 = 0x0102_0304_0506_0708;
    const ME: &str = "me";

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 200, 0, 1], port))
    }

    fn alive(nodes: &[&str]) -> BTreeSet<String> {
        nodes.iter().map(|s| s.to_string()).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A successor watching `OWNER` at `addr(1)`, armed by one beat at `t0`.
    fn armed(t0: Instant) -> Watchdog {
        let mut w = Watchdog::new(ME, 2, HeartbeatTimers::default());
        let mut out = Outbox::new();
        w.set_watched(BTreeMap::from([(OWNER.into(), addr(1))]), t0, &mut out);
        assert_eq!(out, vec![(addr(1), Message::Watch(ME.into()))]);
        beat(&mut w, t0, OWNER_BOOT);
        w
    }

    /// A beat from the owner (at `addr(1)`, with boot stamp `boot`) at `at`.
    fn beat(w: &mut Watchdog, at: Instant, boot: u64) -> Effects {
        w.on_message(
            addr(1),
            Message::Beat(OWNER.into(), boot),
            at,
            &mut Outbox::new(),
        )
    }

    /// Whether an on-time tick at `at`, with everyone alive in the gossip, presumes someone.
    fn presumes(w: &mut Watchdog, at: Instant) -> bool {
        w.tick(at, Duration::ZERO, &alive(&[OWNER, ME]), &mut Outbox::new())
            .presumed
    }

    fn presumed(w: &Watchdog) -> Vec<&str> {
        w.presumed_down().collect()
    }

    fn links_report(node: &str, seq: u32, links: &[(&str, bool, bool)]) -> LinksReport {
        LinksReport {
            node: node.into(),
            boot: OWNER_BOOT,
            seq,
            links: links
                .iter()
                .map(|(name, carrier, automatic)| LinkReport {
                    name: (*name).into(),
                    carrier: *carrier,
                    automatic: *automatic,
                })
                .collect(),
        }
    }

    #[test]
    fn links_reports_round_trip_with_a_fixed_layout() {
        let report = links_report("n", 7, &[("eth0", false, true), ("cni0", true, false)]);
        let bytes = Message::Links(report.clone()).encode();
        assert_eq!(
            bytes,
            [
                &[5u8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 7, 1, b'n', 2][..],
                &[2, 4][..],
                b"eth0",
                &[1, 4][..],
                b"cni0",
            ]
            .concat()
        );
        assert_eq!(Message::decode(&bytes), Ok(Message::Links(report)));
        let empty = links_report("node-1", 0, &[]);
        assert_eq!(
            Message::decode(&Message::Links(empty.clone()).encode()),
            Ok(Message::Links(empty))
        );
    }

    #[test]
    fn malformed_links_reports_are_rejected() {
        let good = Message::Links(links_report("n", 1, &[("eth0", true, true)])).encode();
        // Every truncation fails, and so does a trailing byte.
        for cut in 1..good.len() {
            assert!(Message::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            Message::decode(&[&good[..], &[0][..]].concat()),
            Err(DecodeError::BadLinks)
        );
        // An empty node name, an empty or over-long interface name, too many links.
        let mut no_name = good.clone();
        no_name[13] = 0;
        assert!(Message::decode(&no_name).is_err());
        let mut long_if = good[..16].to_vec();
        long_if.extend_from_slice(&[1, 16]);
        long_if.extend_from_slice(&[b'e'; 16]);
        assert_eq!(Message::decode(&long_if), Err(DecodeError::BadLinks));
        let mut many = good[..15].to_vec();
        many.push(u8::try_from(MAX_LINKS + 1).unwrap_or(u8::MAX));
        assert_eq!(Message::decode(&many), Err(DecodeError::BadLinks));
        // A sender with more links than fit sends the first MAX_LINKS.
        let names: Vec<String> = (0..60).map(|i| format!("eth{i}")).collect();
        let big = LinksReport {
            links: names
                .iter()
                .map(|n| LinkReport {
                    name: n.clone(),
                    carrier: true,
                    automatic: true,
                })
                .collect(),
            ..links_report("n", 1, &[])
        };
        match Message::decode(&Message::Links(big).encode()) {
            Ok(Message::Links(r)) => assert_eq!(r.links.len(), MAX_LINKS),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_links_report_supersedes_older_ones_of_the_node() {
        let old = links_report("n", 3, &[]);
        let next = links_report("n", 4, &[]);
        assert!(next.supersedes(&old));
        assert!(!old.supersedes(&next));
        assert!(!old.supersedes(&old));
        // Another process (a restart) wins whatever its sequence number, even with a smaller
        // boot stamp (the clock was set back).
        for boot in [OWNER_BOOT + 1, OWNER_BOOT - 1] {
            let restarted = LinksReport {
                boot,
                ..links_report("n", 0, &[])
            };
            assert!(restarted.supersedes(&next));
        }
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_rejected() {
        for m in [
            Message::Beat("node-1".into(), u64::MAX - 1),
            Message::Watch("n".into()),
            Message::Reclaim("ü".into()),
            Message::Restarting("node-2".into(), 15_000),
        ] {
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
        assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(Message::decode(&[1]), Err(DecodeError::BadName));
        // A restart's hold is big-endian milliseconds, before the name.
        assert_eq!(
            Message::Restarting("n".into(), 0x0102_0304).encode(),
            [4, 1, 2, 3, 4, b'n']
        );
        assert_eq!(Message::decode(&[4, 0, 0, 1]), Err(DecodeError::BadName));
        // A beat's stamp is big-endian, before the name.
        assert_eq!(
            Message::Beat("n".into(), OWNER_BOOT).encode(),
            [1, 1, 2, 3, 4, 5, 6, 7, 8, b'n']
        );
        assert_eq!(
            Message::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::BadName)
        );
        assert_eq!(Message::decode(&[1, 0, 0, 0]), Err(DecodeError::BadName));
        assert_eq!(
            Message::decode(&[9, b'a']),
            Err(DecodeError::UnknownType(9))
        );
        assert_eq!(Message::decode(&[1, 0xff]), Err(DecodeError::BadName));
        assert_eq!(
            Message::decode(&[&[2u8][..], &[b'a'; 254][..]].concat()),
            Err(DecodeError::BadName)
        );
        assert_eq!(
            Message::decode(&[&[1u8][..], &[0; 8][..], &[b'a'; 254][..]].concat()),
            Err(DecodeError::BadName)
        );
    }

    #[test]
    fn default_timers_are_valid_and_faster_than_vrrp() {
        let t = HeartbeatTimers::default();
        assert_eq!(t.validate(), Ok(()));
        // VRRP at advert_int 0.01 s: three adverts plus skew.
        assert!(t.dead_after() < ms(30), "{:?}", t.dead_after());
        let bad = |f: fn(&mut HeartbeatTimers)| {
            let mut t = HeartbeatTimers::default();
            f(&mut t);
            t.validate()
        };
        assert!(bad(|t| t.interval = Duration::ZERO).is_err());
        assert!(bad(|t| t.misses = 1).is_err());
        assert!(bad(|t| t.confirm_within = ms(20)).is_err());
        assert!(bad(|t| t.subscribe_period = Duration::ZERO).is_err());
    }

    #[test]
    fn silence_presumes_down_only_after_dead_after() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        let everyone = alive(&[OWNER, ME]);
        assert_eq!(w.next_deadline(), Some(t0 + ms(20)));
        let e = w.tick(t0 + ms(19), Duration::ZERO, &everyone, &mut out);
        assert_eq!(e, Effects::default());
        assert!(presumed(&w).is_empty());
        let e = w.tick(t0 + ms(20), Duration::ZERO, &everyone, &mut out);
        assert!(e.alive_changed && e.presumed && !e.revoked);
        assert_eq!(presumed(&w), vec![OWNER]);
        // Not presumed twice, and the silence deadline is gone (no busy loop).
        let e = w.tick(t0 + ms(40), Duration::ZERO, &everyone, &mut out);
        assert!(!e.presumed);
        // Next: the periodic request for beats; the confirmation window ends later.
        assert_eq!(w.next_deadline(), Some(t0 + ms(500)));
    }

    #[test]
    fn a_late_tick_waits_one_more_interval_before_presuming() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        let everyone = alive(&[OWNER, ME]);
        // This speaker was off the CPU for 100 ms: the silence it sees proves nothing yet.
        let woke = t0 + ms(120);
        assert!(!w.tick(woke, ms(100), &everyone, &mut out).presumed);
        assert_eq!(w.next_deadline(), Some(woke + ms(5)));
        // The owner's beat, late too, arrives right after: nothing happened.
        beat(&mut w, woke + ms(1), OWNER_BOOT);
        assert!(!presumes(&mut w, woke + ms(5)));
        // A really dead owner: presumed one interval later, on an on-time tick.
        let mut w = armed(t0);
        assert!(!w.tick(woke, ms(100), &everyone, &mut out).presumed);
        assert!(presumes(&mut w, woke + ms(5)));
    }

    #[test]
    fn wrong_presumptions_double_the_threshold_up_to_eight_times_for_a_minute() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut now = t0;
        // Each round: silent until presumed, then a beat revokes it. The silence needed grows
        // 20 → 40 → 80 → 160 → 160 ms.
        let mut needed = Vec::new();
        for _ in 0..5 {
            let last = now;
            let mut at = last;
            while !presumes(&mut w, at) {
                at = w.next_deadline().expect("a deadline while armed");
                assert!(at <= last + ms(160), "no presumption within 160 ms");
            }
            needed.push((at - last).as_millis());
            now = at + ms(3);
            let e = beat(&mut w, now, OWNER_BOOT);
            assert!(e.revoked);
        }
        assert_eq!(needed, [20, 40, 80, 160, 160]);
        // A minute without a wrong presumption: back to 20 ms.
        let later = now + BACKOFF_HOLD + ms(1);
        beat(&mut w, later, OWNER_BOOT);
        assert!(!presumes(&mut w, later + ms(19)));
        assert!(presumes(&mut w, later + ms(20)));
    }

    #[test]
    fn a_restarted_owner_is_welcomed_back_without_backoff() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        assert!(presumes(&mut w, t0 + ms(20)));
        // A new process (another boot stamp) beats: the presumption was right, so no backoff.
        let back = t0 + ms(200);
        let e = beat(&mut w, back, OWNER_BOOT + 1);
        assert!(e.revoked && e.alive_changed);
        assert!(!presumes(&mut w, back + ms(19)));
        assert!(presumes(&mut w, back + ms(20)));
    }

    #[test]
    fn a_presumed_owner_is_asked_for_beats_even_when_nothing_else_is_watched() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        let everyone = alive(&[OWNER, ME]);
        assert!(presumes(&mut w, t0 + ms(20)));
        // After the takeover this speaker is successor to nobody...
        w.set_watched(BTreeMap::new(), t0 + ms(21), &mut out);
        out.clear();
        // ...yet the owner, which restarts (same address, new process), is asked for beats
        // within one request period, and its first beat ends the presumption.
        let mut now = t0 + ms(21);
        while !out.contains(&(addr(1), Message::Watch(ME.into()))) {
            now = w.next_deadline().expect("requests keep going");
            assert!(now <= t0 + ms(21) + w.timers().subscribe_period);
            w.tick(now, Duration::ZERO, &everyone, &mut out);
        }
        let e = beat(&mut w, now, OWNER_BOOT + 1);
        assert!(e.revoked);
        // Nothing watched, nothing presumed: the requests stop.
        w.tick(
            now + Duration::from_secs(1),
            Duration::ZERO,
            &everyone,
            &mut out,
        );
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn an_owner_back_after_a_real_outage_is_not_backed_off() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        assert!(presumes(&mut w, t0 + ms(20)));
        // The same process beats again 100 ms after its last beat (its link was down): the
        // presumption was right, and the next failure is detected as fast.
        let back = t0 + ms(100);
        let e = beat(&mut w, back, OWNER_BOOT);
        assert!(e.revoked);
        assert!(!presumes(&mut w, back + ms(19)));
        assert!(presumes(&mut w, back + ms(20)));
    }

    #[test]
    fn a_presumption_can_be_forgotten_without_backoff() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        assert!(presumes(&mut w, t0 + ms(20)));
        assert!(w.forget_presumption(OWNER));
        assert!(!w.forget_presumption(OWNER));
        assert!(w.presumed_down().next().is_none());
        let back = t0 + ms(30);
        beat(&mut w, back, OWNER_BOOT + 1);
        assert!(presumes(&mut w, back + ms(20)));
    }

    #[test]
    fn beats_keep_the_owner_alive() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        let everyone = alive(&[OWNER, ME]);
        for i in 1..100u64 {
            beat(&mut w, t0 + ms(5 * i), OWNER_BOOT);
            let e = w.tick(t0 + ms(5 * i + 4), Duration::ZERO, &everyone, &mut out);
            assert!(!e.presumed, "at beat {i}");
        }
        // Beats from another address (a stale identity) do not count.
        let last = t0 + ms(5 * 99);
        w.on_message(
            addr(2),
            Message::Beat(OWNER.into(), OWNER_BOOT),
            last + ms(15),
            &mut out,
        );
        assert!(presumes(&mut w, last + ms(20)));
    }

    #[test]
    fn owners_silent_together_are_left_to_the_gossip() {
        const OTHER: &str = "other";
        let t0 = Instant::now();
        let mut w = Watchdog::new(ME, 2, HeartbeatTimers::default());
        let mut out = Outbox::new();
        w.set_watched(
            BTreeMap::from([(OWNER.into(), addr(1)), (OTHER.into(), addr(3))]),
            t0,
            &mut out,
        );
        let everyone = alive(&[OWNER, OTHER, ME]);
        let beat_from = |w: &mut Watchdog, node: &str, port: u16, at: Instant| {
            w.on_message(
                addr(port),
                Message::Beat(node.into(), OWNER_BOOT),
                at,
                &mut Outbox::new(),
            );
        };
        beat_from(&mut w, OWNER, 1, t0);
        beat_from(&mut w, OTHER, 3, t0 + ms(2));
        // Both silent: the first is past 20 ms while the second is 2 ms behind it.
        for at in [21, 26, 31, 36, 41] {
            let e = w.tick(t0 + ms(at), Duration::ZERO, &everyone, &mut out);
            assert!(!e.presumed, "presumed at {at} ms: {:?}", presumed(&w));
        }
        // The other one beats again; the owner stays silent: it alone is presumed down.
        beat_from(&mut w, OTHER, 3, t0 + ms(42));
        let mut presumed_at = None;
        for at in (46..=70).step_by(5) {
            if w.tick(t0 + ms(at), Duration::ZERO, &everyone, &mut out)
                .presumed
            {
                presumed_at = Some(at);
                break;
            }
        }
        assert_eq!(presumed(&w), vec![OWNER], "presumed at {presumed_at:?}");
        // A single owner falling silent is presumed down at its threshold, as before.
        let mut single = armed(t0);
        assert!(!presumes(&mut single, t0 + ms(19)));
        assert!(presumes(&mut single, t0 + ms(20)));
    }

    #[test]
    fn an_owner_never_heard_is_never_presumed_down() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(ME, 2, HeartbeatTimers::default());
        let mut out = Outbox::new();
        w.set_watched(BTreeMap::from([(OWNER.into(), addr(1))]), t0, &mut out);
        let e = w.tick(
            t0 + Duration::from_secs(5),
            Duration::ZERO,
            &alive(&[OWNER, ME]),
            &mut out,
        );
        assert!(!e.presumed);
        assert!(presumed(&w).is_empty());
    }

    #[test]
    fn a_member_the_gossip_already_declared_down_is_not_presumed() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        let e = w.tick(t0 + ms(25), Duration::ZERO, &alive(&[ME]), &mut out);
        assert_eq!(e, Effects::default());
        assert!(presumed(&w).is_empty());
        // Disarmed: no deadline left for it but the periodic request.
        assert_eq!(w.next_deadline(), Some(t0 + ms(500)));
    }

    #[test]
    fn gossip_confirmation_drops_the_presumption_quietly() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        w.tick(t0 + ms(20), Duration::ZERO, &alive(&[OWNER, ME]), &mut out);
        out.clear();
        let e = w.tick(t0 + ms(300), Duration::ZERO, &alive(&[ME]), &mut out);
        assert!(!e.alive_changed && !e.revoked, "{e:?}");
        assert!(presumed(&w).is_empty());
        assert!(out.iter().all(|(_, m)| !matches!(m, Message::Reclaim(_))));
    }

    #[test]
    fn a_beat_revokes_the_presumption_and_asks_the_owner_to_reclaim() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        w.tick(t0 + ms(20), Duration::ZERO, &alive(&[OWNER, ME]), &mut out);
        // After the takeover the owner is no longer one we are successor to.
        w.set_watched(BTreeMap::new(), t0 + ms(21), &mut out);
        assert_eq!(presumed(&w), vec![OWNER]);
        out.clear();
        let e = w.on_message(
            addr(1),
            Message::Beat(OWNER.into(), OWNER_BOOT),
            t0 + ms(60),
            &mut out,
        );
        assert!(e.alive_changed && e.revoked);
        assert!(presumed(&w).is_empty());
        assert_eq!(out, vec![(addr(1), Message::Reclaim(ME.into()))]);
    }

    #[test]
    fn an_unconfirmed_presumption_is_revoked_and_not_repeated_without_beats() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        let everyone = alive(&[OWNER, ME]);
        w.tick(t0 + ms(20), Duration::ZERO, &everyone, &mut out);
        out.clear();
        let e = w.tick(
            t0 + ms(20) + Duration::from_secs(1),
            Duration::ZERO,
            &everyone,
            &mut out,
        );
        assert!(e.alive_changed && e.revoked);
        assert!(presumed(&w).is_empty());
        assert!(out.contains(&(addr(1), Message::Reclaim(ME.into()))));
        // Still silent: not presumed again until heard again.
        let e = w.tick(
            t0 + Duration::from_secs(3),
            Duration::ZERO,
            &everyone,
            &mut out,
        );
        assert!(!e.presumed);
        // Heard again: presumable again, after a doubled silence (the revocation backs off).
        let t1 = t0 + Duration::from_secs(4);
        beat(&mut w, t1, OWNER_BOOT);
        assert!(!presumes(&mut w, t1 + ms(20)));
        assert!(presumes(&mut w, t1 + ms(40)));
    }

    #[test]
    fn owners_beat_to_live_subscribers_only() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(OWNER, OWNER_BOOT, HeartbeatTimers::default());
        let mut out = Outbox::new();
        assert_eq!(w.next_deadline(), None);
        let e = w.on_message(addr(7), Message::Watch(ME.into()), t0, &mut out);
        assert_eq!(e, Effects::default());
        assert_eq!(
            out,
            vec![(addr(7), Message::Beat(OWNER.into(), OWNER_BOOT))]
        );
        out.clear();
        let nobody = BTreeSet::new();
        let mut beats = 0;
        let mut now = t0;
        while let Some(at) = w.next_deadline() {
            now = at;
            w.tick(now, Duration::ZERO, &nobody, &mut out);
            beats += out.len();
            out.clear();
        }
        // Four subscribe periods of 2 s at one beat per 5 ms, then silence.
        assert_eq!(now, t0 + Duration::from_secs(2));
        assert_eq!(beats, 399);
        // A repeated request extends without an extra immediate beat.
        w.on_message(addr(7), Message::Watch(ME.into()), now, &mut out);
        w.on_message(addr(7), Message::Watch(ME.into()), now + ms(1), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn watch_requests_repeat_and_include_presumed_owners() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        w.tick(t0 + ms(20), Duration::ZERO, &alive(&[OWNER, ME]), &mut out);
        w.set_watched(BTreeMap::new(), t0 + ms(21), &mut out);
        // Nothing watched, but the presumed owner is still asked for beats...
        assert_eq!(w.next_deadline(), Some(t0 + ms(500)));
        // ...and watching someone else sends requests to both.
        w.set_watched(
            BTreeMap::from([("other".into(), addr(3))]),
            t0 + ms(30),
            &mut out,
        );
        out.clear();
        w.tick(
            t0 + ms(530),
            Duration::ZERO,
            &alive(&[OWNER, ME, "other"]),
            &mut out,
        );
        let mut to: Vec<SocketAddr> = out.iter().map(|(a, _)| *a).collect();
        to.sort();
        assert_eq!(to, vec![addr(1), addr(3)]);
    }

    #[test]
    fn a_moved_owner_is_watched_afresh() {
        let t0 = Instant::now();
        let mut w = armed(t0);
        let mut out = Outbox::new();
        w.set_watched(
            BTreeMap::from([(OWNER.into(), addr(9))]),
            t0 + ms(1),
            &mut out,
        );
        assert_eq!(out, vec![(addr(9), Message::Watch(ME.into()))]);
        // Not armed at its new address until it beats from there.
        assert!(
            !w.tick(t0 + ms(100), Duration::ZERO, &alive(&[OWNER, ME]), &mut out)
                .presumed
        );
        // Ourselves is never watched.
        out.clear();
        w.set_watched(BTreeMap::from([(ME.into(), addr(2))]), t0, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.watched().count(), 0);
    }

    proptest! {
        /// Links reports survive encoding; arbitrary bytes never panic the decoder.
        #[test]
        fn links_reports_round_trip(
            node in "[a-z0-9.-]{1,60}",
            boot in any::<u64>(),
            seq in any::<u32>(),
            links in proptest::collection::vec(("[a-z0-9]{1,15}", any::<bool>(), any::<bool>()), 0..10),
            noise in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let report = LinksReport {
                node,
                boot,
                seq,
                links: links
                    .into_iter()
                    .map(|(name, carrier, automatic)| LinkReport { name, carrier, automatic })
                    .collect(),
            };
            let m = Message::Links(report);
            prop_assert_eq!(Message::decode(&m.encode()), Ok(m));
            let _ = Message::decode(&[&[LINKS][..], &noise[..]].concat());
        }
    }

    proptest! {
        /// Whatever arrives in whatever order, the watchdog never presumes down a member the
        /// gossip does not see alive, never presumes itself, and its next deadline is never
        /// in the past after a tick (no busy loop).
        #[test]
        fn invariants_hold(steps in proptest::collection::vec((0u8..6, 0u64..50, 0usize..3, 0u64..20), 1..200)) {
            let names = [OWNER, ME, "third"];
            let t0 = Instant::now();
            let mut now = t0;
            let mut w = Watchdog::new(ME, 2, HeartbeatTimers::default());
            let mut out = Outbox::new();
            let mut gossip = alive(&names);
            for (kind, dt, who, late) in steps {
                now += ms(dt);
                let node = names[who].to_string();
                let from = addr(who as u16);
                match kind {
                    0 => { w.on_message(from, Message::Beat(node, 1), now, &mut out); }
                    1 => { w.on_message(from, Message::Watch(node), now, &mut out); }
                    2 => {
                        let targets = BTreeMap::from([(node, from)]);
                        w.set_watched(targets, now, &mut out);
                    }
                    3 => { gossip.remove(&node); }
                    4 => { gossip.insert(node); }
                    _ => {}
                }
                w.tick(now, ms(late), &gossip, &mut out);
                for p in w.presumed_down() {
                    prop_assert!(p != ME);
                    prop_assert!(gossip.contains(p), "{} presumed down but the gossip has it down", p);
                }
                if let Some(at) = w.next_deadline() {
                    prop_assert!(at > now, "deadline {:?} not after now", at - t0);
                }
                out.clear();
            }
        }
    }
}
