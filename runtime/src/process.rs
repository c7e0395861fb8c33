//! Starting and stopping a component: the handle a binary's `start` returns, and the signals
//! that end the process.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

/// What a component's main loop receives: it resolves when the component is asked to stop.
pub type StopSignal = oneshot::Receiver<()>;

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
    E: From<JoinError> + Send + 'static,
{
    /// Spawns `main_loop` with the signal that asks it to stop.
    pub fn spawn<F>(
        addr: SocketAddr,
        shared: Arc<S>,
        main_loop: impl FnOnce(StopSignal) -> F,
    ) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (stop, stop_rx) = oneshot::channel();
        Self {
            addr,
            shared,
            stop: Some(stop),
            task: tokio::spawn(main_loop(stop_rx)),
        }
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

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[tokio::test]
    async fn stop_asks_the_loop_to_end_and_returns_its_result() {
        let h: Handle<(), TestError> = Handle::spawn(addr(), Arc::new(()), |stop| async move {
            let _ = stop.await;
            Ok(())
        });
        assert_eq!(h.stop().await, Ok(()));
    }

    #[tokio::test]
    async fn wait_returns_the_loop_s_error_and_a_panic_as_a_join_error() {
        let h: Handle<(), TestError> =
            Handle::spawn(addr(), Arc::new(()), |_| async { Err(TestError::Failed) });
        assert_eq!(h.wait().await, Err(TestError::Failed));
        let h: Handle<(), TestError> =
            Handle::spawn(addr(), Arc::new(()), |_| async { panic!("loop panicked") });
        assert_eq!(h.wait().await, Err(TestError::Join));
    }
}
