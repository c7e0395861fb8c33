//! A discrete-event simulation of N foca instances on an in-memory network with a simulated
//! clock: datagrams are delivered after a random latency or lost at random, timers fire at
//! their simulated instant, and each instance is driven the way the speaker's membership
//! thread drives it (`ferrolb_speaker::membership`): every datagram sealed in the HMAC
//! envelope (counted by size, [`auth::OVERHEAD`] bytes each), a gossip round at once when a
//! member comes up or goes down, and an announce to every seed that is not an active member
//! every seed period. foca is sans-IO, so simulated minutes take seconds of CPU.

use bytes::Bytes;
use ferrolb_speaker::membership::NodeId;
use ferrolb_speaker_core::membership::auth;
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use rand_foca::rngs::StdRng;
use rand_foca::{RngExt, SeedableRng};
use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// What one simulation runs.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// foca instances.
    pub members: usize,
    /// The foca configuration every instance uses.
    pub config: foca::Config,
    /// Probability that a datagram is lost (0.01 = 1 %).
    pub loss: f64,
    /// Latency of a delivered datagram, uniform in this range.
    pub latency: (Duration, Duration),
    /// Time before the measured phases (timers desynchronise, queues settle).
    pub warm_up: Duration,
    /// The phase without kills: traffic and false "down" verdicts.
    pub steady: Duration,
    /// Members killed one at a time after the steady phase.
    pub kills: usize,
    /// Time between kills (the last kill is followed by one more).
    pub kill_spacing: Duration,
    /// How often each member announces to seeds that are not active members (the speaker's
    /// `--gossip-seed-announce-period`; every member's address is a seed, as every Node is).
    pub seed_period: Duration,
    /// Seed of every random choice: the same seed replays the same run.
    pub seed: u64,
}

/// Traffic sent by the members in one phase.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Traffic {
    /// Seconds of simulated time.
    pub seconds: f64,
    /// Members sending (alive during the whole phase).
    pub members: usize,
    /// Datagrams sent, all members.
    pub datagrams: u64,
    /// UDP payload bytes sent (foca's payload plus the authentication envelope), all members.
    pub bytes: u64,
    /// The most bytes one member sent.
    pub max_member_bytes: u64,
}

impl Traffic {
    /// Datagrams per second per member.
    pub fn datagrams_per_member_s(&self) -> f64 {
        per_member_s(self.datagrams, self.members, self.seconds)
    }

    /// UDP payload bytes per second per member.
    pub fn bytes_per_member_s(&self) -> f64 {
        per_member_s(self.bytes, self.members, self.seconds)
    }

    /// Bytes per second per member with IPv4 and UDP headers (28 bytes a datagram).
    pub fn ip_bytes_per_member_s(&self) -> f64 {
        per_member_s(
            self.bytes + self.datagrams * IPV4_UDP_HEADERS,
            self.members,
            self.seconds,
        )
    }

    /// The busiest member's UDP payload bytes per second.
    pub fn max_member_bytes_s(&self) -> f64 {
        per_member_s(self.max_member_bytes, 1, self.seconds)
    }
}

/// IPv4 (20) and UDP (8) header bytes of a datagram.
pub const IPV4_UDP_HEADERS: u64 = 28;

fn per_member_s(total: u64, members: usize, seconds: f64) -> f64 {
    if members == 0 || seconds <= 0.0 {
        return 0.0;
    }
    total as f64 / members as f64 / seconds
}

/// Live members declared down in one phase.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FalseDowns {
    /// Distinct identities of live members that some member declared or learnt down.
    pub verdicts: usize,
    /// "Member down" notifications about live members, summed over all observers.
    pub notifications: u64,
    /// Times a live member was told it was down (foca's `TurnUndead`) and rejoined with a
    /// renewed identity. Not a verdict when no member declared it down: the others then see a
    /// rename, and the node never leaves their alive sets.
    pub rejoins: u64,
}

/// One killed member.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Detection {
    /// Kill to the first member declaring it down; `None`: nobody did before the run ended.
    pub first_down: Option<Duration>,
    /// Kill to the moment every member still alive at the end knew it down; `None`: some
    /// never learnt it before the run ended.
    pub all_know: Option<Duration>,
    /// Members alive at the end that never learnt it down.
    pub unaware: usize,
}

/// What one simulation measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    /// False verdicts while the timers settled (not part of the figures; a sanity check).
    pub warm_up_false_downs: FalseDowns,
    /// Traffic in the steady phase.
    pub steady_traffic: Traffic,
    /// False verdicts in the steady phase.
    pub steady_false_downs: FalseDowns,
    /// Traffic in the kill phase (includes announces to the dead members).
    pub kill_traffic: Traffic,
    /// False verdicts in the kill phase.
    pub kill_false_downs: FalseDowns,
    /// One entry per kill, in kill order.
    pub detections: Vec<Detection>,
    /// Events the simulation handled (datagrams and timers).
    pub events: u64,
    /// Errors foca returned (malformed or unexpected input).
    pub foca_errors: u64,
    /// Wall-clock time the simulation took.
    pub wall: Duration,
    /// CPU time of the simulating thread.
    pub cpu: Option<Duration>,
}

type Instance = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

enum Event {
    Timer(usize, Timer<NodeId>),
    Deliver(usize, Bytes),
    SeedTick(usize),
    Kill(usize),
}

struct Queued {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed: the heap pops the earliest event (ties in scheduling order).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Phase {
    WarmUp,
    Steady,
    Kills,
}

/// The node name of member `i`: as long as a typical generated node name.
pub fn node_name(i: usize) -> String {
    format!("ferrolb-worker-{i:04}")
}

/// The gossip address of member `i` (never used for I/O: the network is in memory).
pub fn node_addr(i: usize) -> SocketAddr {
    let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
    let [_, _, hi, lo] = n.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 200, hi, lo)), 7946)
}

/// A start stamp as the speaker makes them (milliseconds since the epoch, late 2026), so the
/// identity encodes to its real size.
const BOOT_MS: u64 = 1_796_000_000_000;

struct Sim {
    nodes: Vec<Instance>,
    runtimes: Vec<AccumulatingRuntime<NodeId>>,
    dead: Vec<bool>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    now: u64,
    rng: StdRng,
    loss: f64,
    latency_ns: (u64, u64),
    phase: Phase,
    steady_bytes: Vec<u64>,
    steady: Traffic,
    kill_traffic: Traffic,
    /// By phase (warm-up, steady, kills).
    false_downs: [FalseDowns; 3],
    false_ids: [BTreeSet<(SocketAddr, u64)>; 3],
    /// Per killed member (by kill order): when each observer first learnt it down.
    learnt: Vec<Vec<Option<u64>>>,
    /// Kill order of each member killed so far.
    kill_index: HashMap<usize, usize>,
    kill_times: Vec<u64>,
    events: u64,
    foca_errors: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Sim {
    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            event,
        });
    }

    /// Sends, schedules and notifies what member `i`'s last call produced.
    fn drain(&mut self, i: usize, timer_offset: u64) {
        let mut news = false;
        let mut runtime = std::mem::take(&mut self.runtimes[i]);
        self.flush_sends(i, &mut runtime);
        while let Some((after, timer)) = runtime.to_schedule() {
            let at = self.now + nanos(after) + timer_offset;
            self.schedule(at, Event::Timer(i, timer));
        }
        while let Some(notification) = runtime.to_notify() {
            match notification {
                OwnedNotification::MemberDown(id) => {
                    news = true;
                    self.member_down(i, &id);
                }
                OwnedNotification::MemberUp(_) | OwnedNotification::Rename(_, _) => news = true,
                OwnedNotification::Rejoin(_) => self.false_downs[self.phase as usize].rejoins += 1,
                _ => {}
            }
        }
        // As the speaker does: news is gossiped at once, not at the next gossip tick.
        if news && timer_offset == 0 {
            if self.nodes[i].gossip(&mut runtime).is_err() {
                self.foca_errors += 1;
            }
            self.flush_sends(i, &mut runtime);
            while let Some((after, timer)) = runtime.to_schedule() {
                let at = self.now + nanos(after);
                self.schedule(at, Event::Timer(i, timer));
            }
        }
        self.runtimes[i] = runtime;
    }

    fn flush_sends(&mut self, i: usize, runtime: &mut AccumulatingRuntime<NodeId>) {
        while let Some((to, data)) = runtime.to_send() {
            let size = u64::try_from(data.len() + auth::OVERHEAD).unwrap_or(u64::MAX);
            match self.phase {
                Phase::WarmUp => {}
                Phase::Steady => {
                    self.steady.datagrams += 1;
                    self.steady.bytes += size;
                    self.steady_bytes[i] += size;
                }
                Phase::Kills => {
                    self.kill_traffic.datagrams += 1;
                    self.kill_traffic.bytes += size;
                }
            }
            if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                continue;
            }
            let Some(&dst) = self.by_addr.get(&to.addr) else {
                continue;
            };
            let latency = self.rng.random_range(self.latency_ns.0..=self.latency_ns.1);
            self.schedule(self.now + latency, Event::Deliver(dst, data));
        }
    }

    fn member_down(&mut self, observer: usize, id: &NodeId) {
        let Some(&victim) = self.by_addr.get(&id.addr) else {
            return;
        };
        if let Some(&k) = self.kill_index.get(&victim) {
            let slot = &mut self.learnt[k][observer];
            if slot.is_none() {
                *slot = Some(self.now);
            }
            return;
        }
        let phase = self.phase as usize;
        self.false_ids[phase].insert((id.addr, id.bump));
        self.false_downs[phase].notifications += 1;
    }

    fn announce_to_seeds(&mut self, i: usize) {
        // Every other member active: no seed to announce to (the common case, checked first).
        if self.nodes[i].num_members() + 1 >= self.nodes.len() {
            return;
        }
        let active: BTreeSet<SocketAddr> =
            self.nodes[i].iter_members().map(|m| m.id().addr).collect();
        let me = self.nodes[i].identity().addr;
        let mut runtime = std::mem::take(&mut self.runtimes[i]);
        for j in 0..self.nodes.len() {
            let seed = node_addr(j);
            if seed == me || active.contains(&seed) {
                continue;
            }
            let dst = NodeId {
                node: String::new(),
                addr: seed,
                bump: 0,
            };
            if self.nodes[i].announce(dst, &mut runtime).is_err() {
                self.foca_errors += 1;
            }
        }
        self.runtimes[i] = runtime;
    }

    fn handle(&mut self, event: Event, seed_period: u64) {
        match event {
            Event::Timer(i, timer) => {
                if self.dead[i] {
                    return;
                }
                self.events += 1;
                let mut runtime = std::mem::take(&mut self.runtimes[i]);
                if self.nodes[i].handle_timer(timer, &mut runtime).is_err() {
                    self.foca_errors += 1;
                }
                self.runtimes[i] = runtime;
                self.drain(i, 0);
            }
            Event::Deliver(i, data) => {
                if self.dead[i] {
                    return;
                }
                self.events += 1;
                let mut runtime = std::mem::take(&mut self.runtimes[i]);
                if self.nodes[i].handle_data(&data, &mut runtime).is_err() {
                    self.foca_errors += 1;
                }
                self.runtimes[i] = runtime;
                self.drain(i, 0);
            }
            Event::SeedTick(i) => {
                if self.dead[i] {
                    return;
                }
                self.announce_to_seeds(i);
                self.drain(i, 0);
                self.schedule(self.now + seed_period, Event::SeedTick(i));
            }
            Event::Kill(i) => {
                self.dead[i] = true;
                self.kill_index.insert(i, self.kill_times.len());
                self.kill_times.push(self.now);
                self.learnt.push(vec![None; self.nodes.len()]);
            }
        }
    }
}

/// Reads the CPU time of the calling thread.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `scenario` to the end.
pub fn run(scenario: &Scenario) -> Outcome {
    let started = std::time::Instant::now();
    let cpu_start = thread_cpu();
    let n = scenario.members;
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let ids: Vec<NodeId> = (0..n)
        .map(|i| NodeId {
            node: node_name(i),
            addr: node_addr(i),
            bump: BOOT_MS + u64::try_from(i).unwrap_or(0),
        })
        .collect();
    let nodes: Vec<Instance> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let rng = StdRng::seed_from_u64(scenario.seed ^ (u64::try_from(i).unwrap_or(0) << 20));
            Foca::new(id.clone(), scenario.config.clone(), rng, PostcardCodec)
        })
        .collect();
    let mut victims: Vec<usize> = (0..n).collect();
    // A partial Fisher-Yates shuffle picks the victims.
    for k in 0..scenario.kills.min(n) {
        let j = rng.random_range(k..n);
        victims.swap(k, j);
    }
    victims.truncate(scenario.kills.min(n.saturating_sub(1)));
    let mut sim = Sim {
        nodes,
        runtimes: (0..n).map(|_| AccumulatingRuntime::new()).collect(),
        dead: vec![false; n],
        by_addr: ids.iter().enumerate().map(|(i, id)| (id.addr, i)).collect(),
        queue: BinaryHeap::new(),
        seq: 0,
        now: 0,
        rng,
        loss: scenario.loss,
        latency_ns: (nanos(scenario.latency.0), nanos(scenario.latency.1)),
        phase: Phase::WarmUp,
        steady_bytes: vec![0; n],
        steady: Traffic::default(),
        kill_traffic: Traffic::default(),
        false_downs: Default::default(),
        false_ids: Default::default(),
        learnt: Vec::new(),
        kill_index: HashMap::new(),
        kill_times: Vec::new(),
        events: 0,
        foca_errors: 0,
    };
    // Every member starts knowing every other (as after a join), its timers offset at random
    // within a probe period so the members do not probe in lockstep.
    let period = nanos(scenario.config.probe_period).max(1);
    let seed_period = nanos(scenario.seed_period).max(1);
    for (i, _) in ids.iter().enumerate() {
        let others = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| foca::Member::alive(id.clone()));
        let mut runtime = std::mem::take(&mut sim.runtimes[i]);
        if sim.nodes[i]
            .apply_many(others, false, &mut runtime)
            .is_err()
        {
            sim.foca_errors += 1;
        }
        sim.runtimes[i] = runtime;
        let offset = sim.rng.random_range(0..period);
        sim.drain(i, offset.max(1));
        let tick = sim.rng.random_range(0..seed_period);
        sim.schedule(tick, Event::SeedTick(i));
    }
    let steady_from = nanos(scenario.warm_up);
    let kills_from = steady_from + nanos(scenario.steady);
    let spacing = nanos(scenario.kill_spacing);
    for (k, &victim) in victims.iter().enumerate() {
        let k = u64::try_from(k).unwrap_or(u64::MAX);
        sim.schedule(kills_from + k * spacing, Event::Kill(victim));
    }
    let kill_count = u64::try_from(victims.len()).unwrap_or(0);
    let end = kills_from + kill_count * spacing;
    while let Some(next) = sim.queue.pop() {
        if next.at >= end {
            break;
        }
        sim.now = next.at;
        sim.phase = if sim.now < steady_from {
            Phase::WarmUp
        } else if sim.now < kills_from {
            Phase::Steady
        } else {
            Phase::Kills
        };
        sim.handle(next.event, seed_period);
    }

    let alive_at_end: Vec<usize> = (0..n).filter(|&i| !sim.dead[i]).collect();
    let detections = sim
        .kill_times
        .iter()
        .zip(&sim.learnt)
        .map(|(&killed, learnt)| {
            let first_down = learnt
                .iter()
                .flatten()
                .min()
                .map(|&t| Duration::from_nanos(t - killed));
            let unaware = alive_at_end
                .iter()
                .filter(|&&o| learnt[o].is_none())
                .count();
            let all_know = if unaware == 0 {
                alive_at_end
                    .iter()
                    .filter_map(|&o| learnt[o])
                    .max()
                    .map(|t| Duration::from_nanos(t - killed))
            } else {
                None
            };
            Detection {
                first_down,
                all_know,
                unaware,
            }
        })
        .collect();
    let mut steady = sim.steady;
    steady.seconds = scenario.steady.as_secs_f64();
    steady.members = n;
    steady.max_member_bytes = sim.steady_bytes.iter().copied().max().unwrap_or(0);
    let mut kill_traffic = sim.kill_traffic;
    kill_traffic.seconds = Duration::from_nanos(end - kills_from).as_secs_f64();
    // Members alive through the kill phase on average: all but half the victims.
    kill_traffic.members = n.saturating_sub(victims.len() / 2);
    let [mut warm_up_false, mut steady_false, mut kill_false] = sim.false_downs;
    let [warm_up_ids, steady_ids, kill_ids] = &sim.false_ids;
    warm_up_false.verdicts = warm_up_ids.len();
    steady_false.verdicts = steady_ids.len();
    kill_false.verdicts = kill_ids.len();
    Outcome {
        warm_up_false_downs: warm_up_false,
        steady_traffic: steady,
        steady_false_downs: steady_false,
        kill_traffic,
        kill_false_downs: kill_false,
        detections,
        events: sim.events,
        foca_errors: sim.foca_errors,
        wall: started.elapsed(),
        cpu: thread_cpu()
            .zip(cpu_start)
            .map(|(end, start)| end.saturating_sub(start)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_speaker::membership::{GossipTimers, foca_config};

    fn scenario(loss: f64) -> Scenario {
        Scenario {
            members: 16,
            config: foca_config(&GossipTimers::default()).expect("config"),
            loss,
            latency: (Duration::from_micros(100), Duration::from_millis(1)),
            warm_up: Duration::from_secs(2),
            steady: Duration::from_secs(10),
            kills: 3,
            kill_spacing: Duration::from_secs(2),
            seed_period: Duration::from_millis(500),
            seed: 7,
        }
    }

    #[test]
    fn every_kill_is_detected_and_spread_without_false_downs() {
        let o = run(&scenario(0.0));
        assert_eq!(o.detections.len(), 3);
        for d in &o.detections {
            let first = d.first_down.expect("someone declared the dead member down");
            let all = d.all_know.expect("every live member learnt it");
            assert_eq!(d.unaware, 0);
            assert!(first <= all);
            // One probe to reach it, one probe period, the suspicion: well under a second.
            assert!(all < Duration::from_secs(1), "{all:?}");
        }
        assert_eq!(o.steady_false_downs.verdicts, 0);
        assert_eq!(o.foca_errors, 0);
        // 20 probes a second, each a ping and an ack, plus gossip: about 40 datagrams.
        let rate = o.steady_traffic.datagrams_per_member_s();
        assert!((30.0..60.0).contains(&rate), "{rate}");
        assert!(o.steady_traffic.bytes > o.steady_traffic.datagrams * auth::OVERHEAD as u64);
    }

    #[test]
    fn total_loss_declares_everyone_down() {
        // Nothing gets through: every member suspects and declares the others down, which
        // the false-down count must show.
        let o = run(&Scenario {
            loss: 1.0,
            kills: 0,
            ..scenario(0.0)
        });
        assert!(o.warm_up_false_downs.verdicts + o.steady_false_downs.verdicts >= 16);
    }

    #[test]
    fn same_seed_same_run() {
        let a = run(&scenario(0.01));
        let b = run(&scenario(0.01));
        assert_eq!(a.steady_traffic.bytes, b.steady_traffic.bytes);
        assert_eq!(a.events, b.events);
    }
}
