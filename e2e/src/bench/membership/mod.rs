//! Membership at scale: N speakers' SWIM gossip (foca) in one process over an in-memory network
//! with a simulated clock ([`sim`]), the speaker's configuration side by side with memberlist's
//! LAN defaults ([`profile`]), at 0 % and 1 % datagram loss: time to detect a dead member,
//! false "down" verdicts, and bytes per second per member; plus the heartbeat channel's cost
//! ([`heartbeat_cost`]).

pub mod heartbeat_cost;
pub mod profile;
pub mod sim;

use super::stats::percentile;
use heartbeat_cost::HeartbeatCost;
use profile::Profile;
use sim::{Outcome, Scenario};
use std::time::Duration;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct MembershipBench {
    /// Members.
    pub members: usize,
    /// Length of the phase without kills.
    pub steady: Duration,
    /// Members killed one at a time afterwards.
    pub kills: usize,
    /// Datagram loss rates to run, each a fraction (0.01 = 1 %).
    pub losses: Vec<f64>,
    /// Latency range of delivered datagrams.
    pub latency: (Duration, Duration),
    /// Simulated time before the measured phases.
    pub warm_up: Duration,
    /// Seed of the runs.
    pub seed: u64,
    /// The configurations to compare.
    pub profiles: Vec<Profile>,
    /// The speaker's seed announce period.
    pub seed_period: Duration,
}

/// One configuration at one loss rate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Run {
    /// Configuration name.
    pub profile: String,
    /// Its timers.
    pub timers: String,
    /// Datagram loss, percent.
    pub loss_percent: f64,
    /// Time between kills, seconds.
    pub kill_spacing_s: f64,
    /// Kill → first member declares it down: median and maximum, ms.
    pub first_down_p50_ms: Option<f64>,
    /// See `first_down_p50_ms`.
    pub first_down_max_ms: Option<f64>,
    /// Kill → every live member knows: median and maximum, ms (over kills all learnt).
    pub all_know_p50_ms: Option<f64>,
    /// See `all_know_p50_ms`.
    pub all_know_max_ms: Option<f64>,
    /// Kills some live member never learnt of before the next kill's phase ended.
    pub kills_not_fully_known: usize,
    /// Everything the simulation measured.
    pub outcome: Outcome,
}

/// Benchmark figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// Members.
    pub members: usize,
    /// Length of the steady phase, seconds.
    pub steady_s: f64,
    /// Kills per run.
    pub kills: usize,
    /// Latency range, ms.
    pub latency_ms: (f64, f64),
    /// Seed.
    pub seed: u64,
    /// Runs, by configuration then loss.
    pub runs: Vec<Run>,
    /// The heartbeat channel's cost.
    pub heartbeat: HeartbeatCost,
}

/// Time between kills: the member must be detected and the news spread before the next
/// kill, so the runs do not overlap.
fn kill_spacing(config: &foca::Config) -> Duration {
    (config.probe_period * 2 + config.suspect_to_down_after) * 2 + Duration::from_secs(2)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs every configuration at every loss rate, one after the other.
pub fn run(bench: &MembershipBench) -> Report {
    let mut runs = Vec::new();
    for profile in &bench.profiles {
        for &loss in &bench.losses {
            let spacing = kill_spacing(&profile.config);
            let scenario = Scenario {
                members: bench.members,
                config: profile.config.clone(),
                loss,
                latency: bench.latency,
                warm_up: bench.warm_up,
                steady: bench.steady,
                kills: bench.kills,
                kill_spacing: spacing,
                seed_period: bench.seed_period,
                seed: bench.seed,
            };
            tracing::info!(profile = %profile.name, loss, "membership bench: running");
            let outcome = sim::run(&scenario);
            let first: Vec<Duration> = outcome
                .detections
                .iter()
                .filter_map(|d| d.first_down)
                .collect();
            let all: Vec<Duration> = outcome
                .detections
                .iter()
                .filter_map(|d| d.all_know)
                .collect();
            runs.push(Run {
                profile: profile.name.clone(),
                timers: profile::describe(&profile.config),
                loss_percent: loss * 100.0,
                kill_spacing_s: spacing.as_secs_f64(),
                first_down_p50_ms: percentile(&first, 50.0).map(ms),
                first_down_max_ms: first.iter().max().copied().map(ms),
                all_know_p50_ms: percentile(&all, 50.0).map(ms),
                all_know_max_ms: all.iter().max().copied().map(ms),
                kills_not_fully_known: outcome.detections.len() - all.len(),
                outcome,
            });
        }
    }
    Report {
        members: bench.members,
        steady_s: bench.steady.as_secs_f64(),
        kills: bench.kills,
        latency_ms: (ms(bench.latency.0), ms(bench.latency.1)),
        seed: bench.seed,
        runs,
        heartbeat: HeartbeatCost::new(bench.members, &[1, 3, 10, 100, 999]),
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "membership: {} foca instances in one process, in-memory network, simulated clock; latency {:.1}-{:.1} ms; \
             {:.0} s steady phase, then {} kills one at a time; seed {}",
            self.members,
            self.latency_ms.0,
            self.latency_ms.1,
            self.steady_s,
            self.kills,
            self.seed
        )?;
        let mut named = Vec::new();
        for r in &self.runs {
            if !named.contains(&r.profile) {
                writeln!(f, "  {}: {}", r.profile, r.timers)?;
                named.push(r.profile.clone());
            }
        }
        writeln!(
            f,
            "{:<16} {:>5} | {:>17} {:>17} {:>7} | {:>15} {:>5} | {:>8} {:>8} {:>8} {:>8} | {:>7} {:>7}",
            "profile",
            "loss",
            "1st down p50/max",
            "all know p50/max",
            "unknown",
            "false down v/n",
            "rejn",
            "dgram/s",
            "B/s",
            "B/s+IP",
            "max B/s",
            "wall s",
            "cpu s"
        )?;
        writeln!(
            f,
            "{:<16} {:>5} | {:>17} {:>17} {:>7} | {:>15} {:>5} | {:>8} {:>8} {:>8} {:>8} |",
            "",
            "%",
            "ms",
            "ms",
            "kills",
            "(steady)",
            "",
            "/member",
            "/member",
            "/member",
            "1 member"
        )?;
        for r in &self.runs {
            let o = &r.outcome;
            let t = &o.steady_traffic;
            writeln!(
                f,
                "{:<16} {:>5.1} | {:>8}/{:<8} {:>8}/{:<8} {:>7} | {:>7}/{:<7} {:>5} | {:>8.1} {:>8.0} {:>8.0} {:>8.0} | {:>7.1} {:>7.1}",
                r.profile,
                r.loss_percent,
                opt_ms(r.first_down_p50_ms),
                opt_ms(r.first_down_max_ms),
                opt_ms(r.all_know_p50_ms),
                opt_ms(r.all_know_max_ms),
                r.kills_not_fully_known,
                o.steady_false_downs.verdicts,
                o.steady_false_downs.notifications,
                o.steady_false_downs.rejoins,
                t.datagrams_per_member_s(),
                t.bytes_per_member_s(),
                t.ip_bytes_per_member_s(),
                t.max_member_bytes_s(),
                o.wall.as_secs_f64(),
                o.cpu.map_or(f64::NAN, |c| c.as_secs_f64()),
            )?;
        }
        writeln!(
            f,
            "  false down v/n: live members' identities declared down by anyone / 'member down' notifications about live \
             members summed over observers, in the steady phase; rejn: live members told they were down that rejoined \
             with a renewed identity (a rename for the others when no verdict preceded it)"
        )?;
        for r in &self.runs {
            let o = &r.outcome;
            writeln!(
                f,
                "  {} @ {:.1} %: kill phase (spacing {:.1} s): {:.1} dgram/s, {:.0} B/s per member; false downs v/n {}/{}; \
                 warm-up false downs {}; {} events, {} foca errors",
                r.profile,
                r.loss_percent,
                r.kill_spacing_s,
                o.kill_traffic.datagrams_per_member_s(),
                o.kill_traffic.bytes_per_member_s(),
                o.kill_false_downs.verdicts,
                o.kill_false_downs.notifications,
                o.warm_up_false_downs.verdicts,
                o.events,
                o.foca_errors,
            )?;
        }
        write!(f, "{}", self.heartbeat)
    }
}
