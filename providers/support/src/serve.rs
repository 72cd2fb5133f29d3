//! Serving a provider's exports: one task per invocation, each task let go once it has ended.
//!
//! wasmcloud-provider-sdk 0.17.1's `serve_provider_exports` spawns every invocation into a
//! `JoinSet` it never joins, and a `JoinSet` keeps a finished task's memory until it is joined.
//! So every call a provider ever served stayed allocated until the provider stopped: the
//! key-value provider grew by about 7.5 KiB per order (its reads and writes), 550-640 MiB over
//! one `make bench`. This loop is the same, but joins each task as it ends.

use std::future::Future;
use std::pin::pin;

use futures::StreamExt as _;
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use wasmcloud_provider_sdk::provider::InvocationStreams;

/// Runs every invocation the streams accept, each in its own task, until `shutdown` completes;
/// then the invocations still running are aborted. Returns how many there were.
pub async fn serve_invocations(
    invocations: InvocationStreams,
    shutdown: impl Future<Output = ()>,
) -> usize {
    let mut invocations =
        futures::stream::select_all(invocations.into_iter().map(|(instance, name, stream)| {
            stream.map(move |accepted| (instance, name, accepted))
        }));
    let mut shutdown = pin!(shutdown);
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            Some((instance, name, accepted)) = invocations.next() => match accepted {
                Ok(invocation) => {
                    running.spawn(async move {
                        if let Err(err) = invocation.await {
                            warn!(?err, instance, name, "failed to serve invocation");
                        }
                    });
                }
                Err(err) => warn!(?err, instance, name, "failed to accept invocation"),
            },
            Some(ended) = running.join_next() => {
                if let Err(err) = ended {
                    if err.is_panic() {
                        error!(%err, "an invocation panicked");
                    }
                }
            }
            () = &mut shutdown => {
                let in_flight = running.len();
                info!(in_flight, "stopping: invocations still running are aborted");
                running.shutdown().await;
                return in_flight;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures::stream;
    use futures::FutureExt as _;

    use super::*;

    /// An export whose invocations are `futures`, as wit-bindgen-wrpc's `serve` hands them over.
    fn export_of(
        futures: Vec<std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>>,
    ) -> InvocationStreams {
        vec![(
            "orders:test/export",
            "call",
            Box::pin(stream::iter(futures.into_iter().map(Ok)).chain(stream::pending())),
        )]
    }

    #[tokio::test]
    async fn every_invocation_runs_and_none_is_kept_once_it_has_ended() {
        let ran = Arc::new(AtomicUsize::new(0));
        let (all_ran, ran_them) = tokio::sync::oneshot::channel();
        let all_ran = Arc::new(std::sync::Mutex::new(Some(all_ran)));
        let invocations = (0..1000)
            .map(|_| {
                let (ran, all_ran) = (Arc::clone(&ran), Arc::clone(&all_ran));
                async move {
                    if ran.fetch_add(1, Ordering::SeqCst) + 1 == 1000 {
                        all_ran.lock().unwrap().take().unwrap().send(()).unwrap();
                    }
                    anyhow::Ok(())
                }
                .boxed()
            })
            .collect();
        // Stop a moment after the last one ended: ample time for the loop to let them go.
        let shutdown = async {
            ran_them.await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let kept = serve_invocations(export_of(invocations), shutdown).await;
        assert_eq!(ran.load(Ordering::SeqCst), 1000);
        assert_eq!(
            kept, 0,
            "ended invocations are let go, not kept until shutdown"
        );
    }

    #[tokio::test]
    async fn an_invocation_still_running_at_shutdown_is_counted_and_aborted() {
        let dropped = Arc::new(AtomicUsize::new(0));
        struct CountsDrop(Arc<AtomicUsize>);
        impl Drop for CountsDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let guard = CountsDrop(Arc::clone(&dropped));
        let never_ends = async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            anyhow::Ok(())
        }
        .boxed();
        let shutdown = tokio::time::sleep(Duration::from_millis(100));
        let in_flight = serve_invocations(export_of(vec![never_ends]), shutdown).await;
        assert_eq!(in_flight, 1);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "aborted, not left running"
        );
    }
}
