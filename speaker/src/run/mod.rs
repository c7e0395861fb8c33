//! The speaker process: caches, the membership driver, the level-triggered loop (a pure pass
//! from the whole view to a plan, then the executors), events and the HTTP API.

mod carrier;
mod events;
mod membership;
mod shared;
mod speaker;

pub use shared::Shared;

use crate::bgp::manager::PeerManager;
use crate::layer2::announcer::{Announcer, AnnouncerConfig, KERNEL_LEASE, L2Responder};
use crate::membership::GossipTimers;
use crate::status_objects::Writers;
use crate::stores::SpeakerStores;
use anyhow::Context;
use events::EventQueue;
use ferrolb_api::service::ClassPolicy;
use ferrolb_runtime::Wiring;
use ferrolb_runtime::config_state::ConfigStateWriter;
use ferrolb_runtime::groups::ConfigGroup;
use ferrolb_runtime::groups::ConfigSourceArgs;
use ferrolb_runtime::http::HttpApi;
/// The HTTP API's security flags ([`RunOptions::http`]).
pub use ferrolb_runtime::http::HttpSecurityArgs;
use ferrolb_speaker_core::desired::Modes;
use ferrolb_speaker_core::membership::heartbeat::HeartbeatTimers;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use membership::MembershipDriver;
use speaker::Speaker;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Settings of `ferrolb-speaker run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// This node's name (the Node object's name).
    pub node_name: String,
    /// Namespace of the configuration objects and Secrets.
    pub namespace: String,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// How the HTTP API is protected: HTTPS with token access checks unless it says
    /// otherwise.
    pub http: HttpSecurityArgs,
    /// Which `loadBalancerClass` values are ours to handle.
    pub class_policy: ClassPolicy,
    /// Gossip membership: UDP port (on the node's address) and the Secret holding the key;
    /// `None` uses the Node Ready condition alone.
    pub membership: Option<MembershipOptions>,
    /// Glob patterns of interfaces the automatic choice skips (layer 2).
    pub exclude_interfaces: Vec<String>,
    /// Who answers ARP and NDP (in the kernel where possible, or always from userspace).
    pub l2_responder: L2Responder,
    /// Which announcement modes run (the same on every speaker).
    pub modes: Modes,
    /// Which API groups the configuration is read from, and MetalLB's namespace.
    pub config_source: ConfigSourceArgs,
    /// Announce from nodes labelled `node.kubernetes.io/exclude-from-external-load-balancers`
    /// too (MetalLB's `--ignore-exclude-lb`; the same on every speaker).
    pub ignore_exclude_lb: bool,
    /// On SIGTERM, keep routes through BGP graceful restart when the node stays, and withdraw
    /// before the Cease when it leaves (`--hitless-operations`); `false` always ceases at once
    /// and never announces the Restart State bit.
    pub hitless_operations: bool,
    /// Directory of the restart marker (`--restart-marker-dir`).
    pub restart_marker_dir: std::path::PathBuf,
    /// Directory in a bpffs mount where a speaker restarting in place leaves its in-kernel
    /// responder pinned for the next process (`--l2-handover-dir`).
    pub l2_handover_dir: std::path::PathBuf,
}

/// Gossip membership settings.
#[derive(Clone, Debug)]
pub struct MembershipOptions {
    /// UDP port, the same on every node.
    pub port: u16,
    /// Secret (in the speaker's namespace) with the shared key.
    pub secret: String,
    /// Key of the Secret's data holding the key.
    pub secret_key: String,
    /// SWIM timers.
    pub timers: GossipTimers,
    /// Owner → successor heartbeats; `None` leaves failure detection to the gossip.
    pub heartbeat: Option<HeartbeatTimers>,
}

/// A running speaker: `stop` stops it (withdrawing everything it announces) and waits for it.
pub type Handle = ferrolb_runtime::Handle<Shared, anyhow::Error>;

/// Runs the speaker until SIGTERM/SIGINT.
pub async fn run(client: Client, opts: RunOptions) -> anyhow::Result<()> {
    start(client, opts).await?.run_until_signal().await
}

/// Binds the HTTP API and starts the speaker in the background.
pub async fn start(client: Client, opts: RunOptions) -> anyhow::Result<Handle> {
    let shared = Arc::new(Shared::new(&opts.node_name));
    let security = opts.http.resolve(opts.listen, &opts.node_name)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding the HTTP API on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let api = HttpApi::new(crate::http::router(shared.clone()), security, &client);
    tracing::info!(listen = %addr, node = %opts.node_name, tls = api.is_tls(), "HTTP API listening");
    Ok(Handle::spawn(listener, api, shared, |w| {
        main_loop(client, opts, w)
    })?)
}

/// What woke the loop.
enum Input {
    /// A watched object changed; `more_pending` when another change already followed.
    Changes { more_pending: bool },
    /// The settle retry is due.
    Settle,
    /// The membership's alive set changed (`false`: the membership went away).
    Alive(bool),
    /// Another speaker answered for one of our addresses.
    Reclaim(bool),
    /// This node's interfaces changed, or another speaker reported its carrier.
    Links,
    /// The periodic status refresh.
    Tick,
    /// Asked to stop.
    Stop,
}

async fn main_loop(client: Client, opts: RunOptions, mut w: Wiring<Shared>) -> anyhow::Result<()> {
    let shared = w.shared.clone();
    let groups = opts
        .config_source
        .resolve_when_reachable(&client, &mut w.stop)
        .await
        .map_err(anyhow::Error::msg)?;
    let Some(groups) = groups else {
        return Ok(());
    };
    let metallb_ns = &opts.config_source.metallb_namespace;
    let metallb_secrets_readable = groups.uses(ConfigGroup::Metallb)
        && *metallb_ns != opts.namespace
        && ferrolb_runtime::self_access::may_watch(&client, "secrets", metallb_ns).await;
    if groups.uses(ConfigGroup::Metallb) && *metallb_ns != opts.namespace {
        if metallb_secrets_readable {
            tracing::info!(namespace = %metallb_ns, "reading the password Secrets of MetalLB's namespace");
        } else {
            // Waiting for a cache the RBAC forbids would stall the speaker for good.
            tracing::warn!(
                namespace = %metallb_ns,
                "may not list and watch Secrets in MetalLB's namespace: a metallb.io BGPPeer's \
                 passwordSecret there is not found (chart: metallb.readPasswordSecrets=true)"
            );
        }
    }
    let stores = SpeakerStores::start(
        &client,
        &opts.namespace,
        metallb_ns,
        &groups,
        metallb_secrets_readable,
        &mut w,
    );
    shared.state().config.set_groups(groups.names());
    shared
        .metrics
        .announcements
        .config_groups
        .set(&groups.names());
    let announcer = Arc::new(
        Announcer::start(AnnouncerConfig {
            exclude_patterns: opts.exclude_interfaces.clone(),
            responder: opts.l2_responder,
            kernel_lease: kernel_lease(opts.membership.as_ref().and_then(|m| m.heartbeat.as_ref())),
            make_before_break: opts.hitless_operations.then(|| opts.node_name.clone()),
            handover_dir: Some(crate::layer2::handover_pin::node_dir(
                &opts.l2_handover_dir,
                &opts.node_name,
            )),
        })
        .await
        .context("starting the layer 2 announcer")?,
    );
    shared.set_announcer(announcer.clone());

    let mut stop = std::pin::pin!(w.stop);
    tokio::select! {
        r = stores.wait_until_ready() => r?,
        _ = &mut stop => return Ok(()),
    }
    tracing::info!("caches synced");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-speaker".into(),
            instance: Some(opts.node_name.clone()),
        },
    );
    let config_state = ConfigStateWriter::start(
        &client,
        &format!("speaker-{}", opts.node_name),
        &opts.namespace,
        &opts.config_source.metallb_namespace,
        &groups,
        &mut w.tasks,
    );
    let mut speaker = Speaker {
        config_state,
        // ServiceL2Status, ServiceBGPStatus and BGPSessionState objects follow what the
        // speaker does, written from tasks of their own.
        status_objects: Writers::start(&client, &opts.namespace, &opts.node_name),
        events: EventQueue::start(
            recorder,
            stores.clone(),
            opts.node_name.clone(),
            &mut w.tasks,
        ),
        membership: opts
            .membership
            .clone()
            .map(|m| MembershipDriver::new(m, &opts.node_name, &opts.namespace)),
        bgp: restarted_peer_manager(&opts),
        owners: Default::default(),
        bgp_since: BTreeMap::new(),
        vrf_missing: std::collections::BTreeSet::new(),
        settle_at: None,
        local_links: announcer.interfaces(),
        last_local_links: None,
        last_no_carrier: BTreeMap::new(),
        incremental: Default::default(),
        lists: Default::default(),
        pending: Default::default(),
        bgp_applied: None,
        bgp_statuses_stale: true,
        opts,
        shared,
        stores,
        announcer,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    speaker.pass_and_apply().await;
    loop {
        let input = next_input(&mut speaker, &mut w.changes, &mut stop, &mut tick).await;
        match input {
            Input::Changes { more_pending } => speaker.process_changes(more_pending).await,
            Input::Settle => speaker.process_settle().await,
            Input::Alive(changed) => speaker.process_alive(changed).await,
            Input::Reclaim(reclaimed) => speaker.process_reclaim(reclaimed),
            Input::Links => speaker.process_links().await,
            Input::Tick => speaker.process_tick().await,
            Input::Stop => break,
        }
    }
    speaker.process_stop().await;
    Ok(())
}

/// A peer manager that knows towards which peers this process restarted in place: those of a
/// restart marker the previous process left within their restart time. The marker is taken
/// (removed) either way; with hitless operations off it is not believed.
fn restarted_peer_manager(opts: &RunOptions) -> PeerManager {
    use crate::bgp::restart_marker_file;
    let mut bgp = PeerManager::new(None);
    let marker = match restart_marker_file::take(&opts.restart_marker_dir, &opts.node_name) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "restart marker unreadable; starting as a fresh speaker");
            None
        }
    };
    let Some(marker) = marker.filter(|_| opts.hitless_operations) else {
        return bgp;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let peers = marker.restarting_peers(&opts.node_name, now);
    if peers.is_empty() {
        tracing::info!(
            written = marker.written,
            "restart marker too old or of another node; starting as a fresh speaker"
        );
    } else {
        let names: Vec<&str> = peers.iter().map(|(n, _)| n.as_str()).collect();
        tracing::info!(peers = ?names, "restarted in place: announcing the graceful restart Restart State bit");
    }
    bgp.set_restarting(peers);
    bgp
}

/// Waits for the next input of the loop.
async fn next_input(
    speaker: &mut Speaker,
    changes: &mut watch::Receiver<u64>,
    stop: &mut std::pin::Pin<&mut ferrolb_runtime::process::StopSignal>,
    tick: &mut tokio::time::Interval,
) -> Input {
    let settle_at = speaker.settle_at;
    let (alive, reclaims, links) = match speaker.membership.as_mut().filter(|d| d.is_running()) {
        Some(d) => (
            Some(&mut d.alive),
            Some(&mut d.reclaims),
            Some(&mut d.links),
        ),
        None => (None, None, None),
    };
    let local_links = &mut speaker.local_links;
    tokio::select! {
        _ = changes.changed() => Input::Changes {
            more_pending: changes.has_changed().unwrap_or(false),
        },
        _ = sleep_until(settle_at), if settle_at.is_some() => Input::Settle,
        changed = changed_or_pending(alive) => Input::Alive(changed),
        reclaimed = changed_or_pending(reclaims) => Input::Reclaim(reclaimed),
        // A closed channel (the membership went away) is answered by the Alive branch.
        true = changed_or_pending(links) => Input::Links,
        true = changed_or_pending(Some(local_links)) => Input::Links,
        _ = tick.tick() => Input::Tick,
        _ = stop.as_mut() => Input::Stop,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether `rx` changed (`false` when its sender went away); never resolves without one.
async fn changed_or_pending<T>(rx: Option<&mut watch::Receiver<T>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// The kernel responder's lease: shorter than the time the other speakers take to replace a
/// stopped or starved one, so its node has gone quiet by then (one heartbeat interval below
/// their silence threshold with heartbeats, the default below the gossip's detection time
/// otherwise).
fn kernel_lease(heartbeat: Option<&HeartbeatTimers>) -> Duration {
    match heartbeat {
        Some(h) => h
            .dead_after()
            .saturating_sub(h.interval)
            .clamp(Duration::from_millis(5), KERNEL_LEASE),
        None => KERNEL_LEASE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_lease_ends_before_the_successor_takes_over() {
        let h = HeartbeatTimers::default();
        let lease = kernel_lease(Some(&h));
        assert!(lease < h.dead_after(), "{lease:?}");
        assert_eq!(lease, Duration::from_millis(15));
        assert_eq!(kernel_lease(None), KERNEL_LEASE);
        // Slow heartbeats never lengthen it beyond the default.
        let slow = HeartbeatTimers {
            interval: Duration::from_millis(100),
            misses: 5,
            ..h
        };
        assert_eq!(kernel_lease(Some(&slow)), KERNEL_LEASE);
    }
}
