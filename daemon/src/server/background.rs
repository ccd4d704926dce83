//! Threads for background work (passes, moves): their own OS threads at a lower CPU priority, so that encoding,
//! compression and checksums of rewrites and moves take the CPU only when ingest and queries leave it idle.
//!
//! The IO budget (`tierd_store::budget`) paces what background work asks of the disk and the object store; this
//! paces what it asks of the CPU. Ingest's group commit and the HTTP workers keep the default priority.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tracing::warn;

use super::error::ServerError;

/// Runs `f` on a new thread named `name` whose CPU priority is lowered by `nice` (Linux nice values, 0-19; 0 leaves
/// it as it is) and waits for its answer without blocking the runtime. A panic in `f` comes back as
/// [`ServerError::TaskPanicked`] (the HTTP layer answers it with a JSON 500; the daemon goes on).
pub async fn run<T: Send + 'static>(
    name: &str,
    nice: i32,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServerError> {
    let (tx, rx) = oneshot::channel();
    // The closure is handed over through a slot, so that it can still run elsewhere if no thread can be started.
    let slot = Arc::new(Mutex::new(Some(f)));
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        lower_priority(nice);
        let f = theirs.lock().unwrap_or_else(|e| e.into_inner()).take().expect("taken once");
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    if let Err(e) = spawned {
        // No thread to be had (resource limits): run it on the blocking pool at normal priority rather than fail.
        warn!(error = %e, "cannot start a background thread; running on the blocking pool");
        let f = slot.lock().unwrap_or_else(|e| e.into_inner()).take().expect("not taken: the thread never started");
        return tokio::task::spawn_blocking(f).await.map_err(|e| ServerError::joined(name, e));
    }
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => Err(ServerError::panicked(name, panic)),
        // The thread catches panics, so it always answers unless the process is going down.
        Err(_) => Err(ServerError::TaskCancelled { task: name.to_string() }),
    }
}

/// Lowers the calling thread's CPU priority by `nice` (on Linux `setpriority` with a thread id applies to that
/// thread only). Failure is logged, never fatal.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // Relative to where the thread starts (it inherits the process's nice value), never raising its priority.
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), (current_nice() + nice.max(0)).min(19))
    {
        warn!(nice, error = %e, "cannot lower a background thread's CPU priority");
    }
}

/// The calling thread's nice value (Linux; 0 elsewhere, or when it cannot be read). For tests and the status page.
pub fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    return rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0);
    #[allow(unreachable_code)]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_at_a_lower_priority_and_answers() {
        let here = current_nice();
        let (value, there) = run("test-bg", 7, || (6 * 7, current_nice())).await.unwrap();
        assert_eq!(value, 42);
        if cfg!(target_os = "linux") {
            assert_eq!(there, (here + 7).min(19), "the background thread's nice value");
            assert_eq!(current_nice(), here, "the caller's priority is unchanged");
        }
        let (_, unchanged) = run("test-bg", 0, || ((), current_nice())).await.unwrap();
        assert_eq!(unchanged, here);
    }

    /// Rewrites encode on threads their pass's thread starts (`rewrite.threads`, `tierd_codecs::columnar`'s
    /// encoder): on Linux those take its lowered priority, which is why no shared pool is used for them.
    #[tokio::test]
    async fn threads_a_background_thread_starts_run_at_its_priority() {
        let here = current_nice();
        let (there, child) =
            run("test-bg", 6, || (current_nice(), std::thread::spawn(current_nice).join().unwrap())).await.unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(there, (here + 6).min(19));
            assert_eq!(child, there, "a thread started by a background thread has its nice value");
        }
    }

    #[tokio::test]
    async fn a_panic_reaches_the_caller_as_an_error() {
        let r = run("test-bg", 3, || -> u32 { panic!("boom {}", 7) }).await;
        match r {
            Err(ServerError::TaskPanicked { task, message }) => {
                assert_eq!((task.as_str(), message.as_str()), ("test-bg", "boom 7"))
            }
            other => panic!("{other:?}"),
        }
        let r = run("test-bg", 0, || -> u32 { std::panic::panic_any(5u8) }).await;
        assert!(matches!(r, Err(ServerError::TaskPanicked { message, .. }) if message == "no message"));
    }
}
