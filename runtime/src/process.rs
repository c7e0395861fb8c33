//! Starting and stopping a component: the handle a binary's `start` returns, what its main
//! loop starts with, and the signals that end the process.

use crate::change_log::ChangeLog;
use crate::groups::ResolvedGroups;
use crate::http::HttpApi;
use crate::store::{
    ConfigNamespaces, ConfigStores, spawn_logged_store, spawn_pruned_store, spawn_store,
};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};

/// Resolves when the component is asked to stop.
pub type StopSignal = oneshot::Receiver<()>;

/// What a component's main loop starts with.
pub struct Wiring<S> {
    /// The state the loop shares with the HTTP API.
    pub shared: Arc<S>,
    /// Tasks that live as long as the loop: the HTTP API, the stores' watches and whatever
    /// the loop adds. Dropping the set (when the loop returns) aborts every task in it.
    pub tasks: JoinSet<()>,
    /// Changes when any store of [`Wiring::store`] or [`Wiring::config_stores`] does: the loop
    /// then recomputes from the whole view.
    pub changes: watch::Receiver<u64>,
    /// Resolves when the component is asked to stop.
    pub stop: StopSignal,
    changes_tx: watch::Sender<u64>,
    /// The other end of `stop` when nothing outside holds it (a detached wiring): kept so
    /// that `stop` never fires.
    _stop_tx: Option<oneshot::Sender<()>>,
}

impl<S> Wiring<S> {
    /// A wiring with no HTTP API and no main loop around it: for tools that open a component's
    /// watches alone (e.g. to measure what they cost the API server). Dropping it stops them.
    pub fn detached(shared: Arc<S>) -> Self {
        let (changes_tx, changes) = watch::channel(0u64);
        let (stop_tx, stop) = oneshot::channel();
        Wiring {
            shared,
            tasks: JoinSet::new(),
            changes,
            stop,
            changes_tx,
            _stop_tx: Some(stop_tx),
        }
    }

    /// A cache of `api`'s objects whose every change wakes the loop (see [`spawn_store`]).
    pub fn store<K>(&mut self, api: Api<K>) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        spawn_store(api, self.changes_tx.clone(), &mut self.tasks)
    }

    /// [`Wiring::store`] keeping each object as `prune` leaves it (see [`spawn_pruned_store`]).
    pub fn pruned_store<K>(&mut self, api: Api<K>, prune: fn(&mut K)) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        spawn_pruned_store(api, prune, self.changes_tx.clone(), &mut self.tasks)
    }

    /// [`Wiring::store`] with a log of which objects each change touched (see
    /// [`spawn_logged_store`]), for a loop that keeps its own list of a large cache.
    pub fn logged_store<K>(&mut self, api: Api<K>) -> (Store<K>, ChangeLog<K>)
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        spawn_logged_store(api, self.changes_tx.clone(), &mut self.tasks)
    }

    /// Caches of the configuration CRDs of `groups`, each group's in its namespace (`None`:
    /// all), whose every change wakes the loop.
    pub fn config_stores(
        &mut self,
        client: &Client,
        namespaces: ConfigNamespaces<'_>,
        groups: &ResolvedGroups,
    ) -> ConfigStores {
        ConfigStores::start(
            client,
            namespaces,
            groups,
            self.changes_tx.clone(),
            &mut self.tasks,
        )
    }
}

/// A running component: its HTTP API's address, the state that API reads, and the task of its
/// main loop (which ends with `Result<(), E>`).
pub struct Handle<S, E> {
    /// Bound address of the HTTP API.
    pub addr: SocketAddr,
    /// The state the HTTP API reads.
    pub shared: Arc<S>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), E>>,
}

impl<S, E> Handle<S, E>
where
    S: Send + Sync + 'static,
    E: From<JoinError> + Send + 'static,
{
    /// Serves `api` (the component's HTTP API) on `listener` and runs `main_loop` beside it,
    /// both in the background.
    pub fn spawn<F>(
        listener: TcpListener,
        api: HttpApi,
        shared: Arc<S>,
        main_loop: impl FnOnce(Wiring<S>) -> F + Send + 'static,
    ) -> std::io::Result<Self>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = oneshot::channel();
        let wiring_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            api.serve(listener, &mut tasks);
            let (changes_tx, changes) = watch::channel(0u64);
            main_loop(Wiring {
                shared: wiring_shared,
                tasks,
                changes,
                stop: stop_rx,
                changes_tx,
                _stop_tx: None,
            })
            .await
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// Asks the component to stop (it finishes what its shutdown does, e.g. withdrawing
    /// announcements) and waits for it.
    pub async fn stop(mut self) -> Result<(), E> {
        self.request_stop();
        (&mut self.task).await?
    }

    /// Waits until the component ends by itself (it only does on an error).
    pub async fn wait(mut self) -> Result<(), E> {
        (&mut self.task).await?
    }

    /// Runs until the component ends by itself or SIGTERM/SIGINT arrives, then stops it.
    pub async fn run_until_signal(mut self) -> Result<(), E> {
        tokio::select! {
            r = &mut self.task => r?,
            _ = shutdown_signal() => {
                tracing::info!("signal received");
                self.stop().await
            }
        }
    }

    fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The loop may have ended already; then there is nothing to stop.
            let _ = stop.send(());
        }
    }
}

/// Resolves on SIGTERM (what Kubernetes sends to stop a pod) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still works.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;

    #[derive(Debug, PartialEq)]
    enum TestError {
        Failed,
        Join,
    }

    impl From<JoinError> for TestError {
        fn from(_: JoinError) -> Self {
            TestError::Join
        }
    }

    async fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.expect("bind")
    }

    fn api() -> HttpApi {
        HttpApi::with_reviewer(
            Router::new(),
            crate::http::HttpSecurity::InsecureLoopback,
            crate::http::access::tests::FakeReviewer::default(),
        )
    }

    #[tokio::test]
    async fn stop_asks_the_loop_to_end_and_returns_its_result() {
        let h: Handle<u8, TestError> =
            Handle::spawn(listener().await, api(), Arc::new(7), |w| async move {
                assert_eq!(*w.shared, 7);
                let _ = w.stop.await;
                Ok(())
            })
            .expect("spawn");
        assert_ne!(h.addr.port(), 0);
        assert_eq!(h.stop().await, Ok(()));
    }

    #[tokio::test]
    async fn the_loop_sees_what_the_stores_bump() {
        let h: Handle<(), TestError> =
            Handle::spawn(listener().await, api(), Arc::new(()), |w| async move {
                let mut changes = w.changes.clone();
                w.changes_tx.send_modify(|n| *n += 1);
                assert!(changes.has_changed().unwrap_or(false));
                assert_eq!(*changes.borrow_and_update(), 1);
                Ok(())
            })
            .expect("spawn");
        assert_eq!(h.wait().await, Ok(()));
    }

    #[tokio::test]
    async fn wait_returns_the_loop_s_error_and_a_panic_as_a_join_error() {
        let spawn = |fail: bool| async move {
            let main_loop = move |_| async move {
                if fail {
                    Err(TestError::Failed)
                } else {
                    panic!("loop panicked")
                }
            };
            Handle::<(), TestError>::spawn(listener().await, api(), Arc::new(()), main_loop)
                .expect("spawn")
        };
        assert_eq!(spawn(true).await.wait().await, Err(TestError::Failed));
        assert_eq!(spawn(false).await.wait().await, Err(TestError::Join));
    }
}
