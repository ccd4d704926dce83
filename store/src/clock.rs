//! Time, injected. Nothing else in tierd reads the system time or waits for it: decisions take `now` from a
//! [`Clock`], background loops wait with [`Clock::sleep_until`], and tests advance a [`ManualClock`] instead of
//! sleeping. End-to-end tests of the real binary run it on an [`OffsetClock`] (the daemon turns it on from its
//! environment only, like failpoints) and move that forward instead of sleeping.

mod stopwatch;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use stopwatch::Stopwatch;

/// Milliseconds since the Unix epoch.
pub type TimestampMs = i64;

/// What [`Clock::sleep_until`] returns: boxed, so that the daemon can hold clocks as `Arc<dyn Clock>`; `'static`,
/// so that it can be selected on, stored or moved into a task without borrowing the clock.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now_ms(&self) -> TimestampMs;

    /// Completes once [`Clock::now_ms`] has reached `deadline_ms` (at once if it has already). Cancel-safe: dropping
    /// the future just stops waiting.
    fn sleep_until(&self, deadline_ms: TimestampMs) -> Sleep;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// The longest one tokio sleep of [`SystemClock::sleep_until`] lasts before the wall clock is read again: tokio
/// sleeps on a monotonic clock, so a wall clock set forward is noticed within this long.
const WALL_CLOCK_RECHECK: Duration = Duration::from_secs(1);

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned reader of the system time
    fn now_ms(&self) -> TimestampMs {
        let d =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("system clock is before 1970");
        d.as_millis() as i64
    }

    fn sleep_until(&self, deadline_ms: TimestampMs) -> Sleep {
        let clock = *self;
        Box::pin(async move {
            // The wall clock can jump either way while we sleep: wake at the deadline as tokio measures it (or
            // sooner), then look at the wall clock again.
            loop {
                let left = deadline_ms.saturating_sub(clock.now_ms());
                if left <= 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(left as u64).min(WALL_CLOCK_RECHECK)).await;
            }
        })
    }
}

/// A clock that moves only when told to. Clones share one time; sleepers wake when a clone moves it past their
/// deadline, never by themselves.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<watch::Sender<TimestampMs>>);

impl ManualClock {
    pub fn new(start_ms: TimestampMs) -> Self {
        Self(Arc::new(watch::Sender::new(start_ms)))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.send_modify(|now| *now = now.wrapping_add(ms));
    }

    pub fn set_ms(&self, ms: TimestampMs) {
        self.0.send_replace(ms);
    }
}

impl Default for ManualClock {
    /// A manual clock at the epoch.
    fn default() -> Self {
        Self::new(0)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> TimestampMs {
        *self.0.borrow()
    }

    fn sleep_until(&self, deadline_ms: TimestampMs) -> Sleep {
        let mut time = self.0.subscribe();
        Box::pin(async move {
            // `wait_for` looks at the current time first, then at every change. It fails only when every sender is
            // gone; this receiver's clock is then dropped and can never reach the deadline.
            if time.wait_for(|now| *now >= deadline_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// The wall clock plus an offset that can only grow: the test clock of the real binary. End-to-end tests start the
/// daemon on it and move it forward instead of sleeping out a lease TTL or a grace period; the daemon turns it on
/// from its environment only, so no configuration can. Clones share one offset. Sleepers wake when the wall time
/// reaches their deadline, as with [`SystemClock`], or as soon as a clone moves the offset far enough.
#[derive(Debug, Clone)]
pub struct OffsetClock(Arc<watch::Sender<u64>>);

impl OffsetClock {
    /// A clock `offset_ms` ahead of the wall clock. The offset is never negative, so a daemon restarted with the
    /// offset its predecessor reached never sees time go back.
    pub fn new(offset_ms: u64) -> Self {
        Self(Arc::new(watch::Sender::new(offset_ms)))
    }

    /// How far ahead of the wall clock this clock is.
    pub fn offset_ms(&self) -> u64 {
        *self.0.borrow()
    }

    /// Moves the clock `ms` forward (it cannot move back) and returns the new offset; saturates instead of wrapping.
    pub fn advance_ms(&self, ms: u64) -> u64 {
        self.0.send_modify(|offset| *offset = offset.saturating_add(ms));
        self.offset_ms()
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> TimestampMs {
        SystemClock.now_ms().saturating_add_unsigned(*self.0.borrow())
    }

    fn sleep_until(&self, deadline_ms: TimestampMs) -> Sleep {
        let mut offset = self.0.subscribe();
        Box::pin(async move {
            loop {
                // Marks the offset seen before the deadline is compared, so a move after this line wakes `changed`.
                let ahead = *offset.borrow_and_update();
                let left = deadline_ms.saturating_sub(SystemClock.now_ms().saturating_add_unsigned(ahead));
                if left <= 0 {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(left as u64).min(WALL_CLOCK_RECHECK)) => {}
                    moved = offset.changed() => {
                        if moved.is_err() {
                            // Every clone is gone: the offset is fixed from now on, only the wall time moves.
                            return SystemClock.sleep_until(deadline_ms.saturating_sub_unsigned(ahead)).await;
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance_ms(250);
        assert_eq!(c.now_ms(), 1_250);
        c.set_ms(5);
        assert_eq!(c.now_ms(), 5);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }

    /// Whether `sleep` completes when polled once, without waiting.
    fn done(sleep: &mut Sleep) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        sleep.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn a_manual_sleeper_wakes_exactly_when_the_clock_reaches_its_deadline() {
        let c = ManualClock::new(1_000);
        let mut sleep = c.sleep_until(1_500);
        assert!(!done(&mut sleep));
        c.advance_ms(499);
        assert!(!done(&mut sleep), "one ms before the deadline");
        c.clone().advance_ms(1); // any clone moves the shared time
        assert!(done(&mut sleep), "at the deadline");
        assert!(done(&mut c.sleep_until(1_500)), "a deadline already reached is no wait");
        assert!(done(&mut c.sleep_until(i64::MIN)));
        let mut sleep = c.sleep_until(2_000);
        c.set_ms(1_999);
        assert!(!done(&mut sleep));
        c.set_ms(3_000);
        assert!(done(&mut sleep), "set past the deadline");
    }

    /// A task waiting on the manual clock is woken by the test moving it, not by time passing: with tokio's time
    /// paused, an hour of auto-advanced tokio time does not wake it.
    #[tokio::test(start_paused = true)]
    async fn a_manual_sleeper_in_a_task_is_woken_by_the_clock_and_not_by_time() {
        let c = ManualClock::new(0);
        let woke = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (sleep, woke) = (c.sleep_until(10_000), woke.clone());
            async move {
                sleep.await;
                woke.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        assert!(!woke.load(std::sync::atomic::Ordering::SeqCst));
        c.advance_ms(9_999);
        tokio::task::yield_now().await;
        assert!(!woke.load(std::sync::atomic::Ordering::SeqCst));
        c.advance_ms(1);
        tokio::time::timeout(Duration::from_secs(1), task).await.expect("woken").unwrap();
        assert!(woke.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn a_dropped_manual_clock_never_wakes_its_sleepers() {
        let c = ManualClock::new(0);
        let mut sleep = c.sleep_until(1);
        drop(c);
        assert!(!done(&mut sleep));
    }

    #[tokio::test]
    async fn a_system_sleep_of_a_few_ms_returns_after_its_deadline() {
        let deadline = SystemClock.now_ms() + 5;
        SystemClock.sleep_until(deadline).await;
        assert!(SystemClock.now_ms() >= deadline);
        // A deadline in the past is no wait.
        let mut past = SystemClock.sleep_until(0);
        assert!(matches!(
            past.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())),
            Poll::Ready(())
        ));
    }

    #[test]
    fn an_offset_clock_is_the_wall_clock_plus_an_offset_that_only_grows() {
        let c = OffsetClock::new(5_000);
        let (before, now, after) = (SystemClock.now_ms(), c.now_ms(), SystemClock.now_ms());
        assert!((before + 5_000..=after + 5_000).contains(&now), "{before} {now} {after}");
        assert_eq!(c.clone().advance_ms(250), 5_250, "any clone moves the shared offset");
        assert_eq!(c.offset_ms(), 5_250);
        assert!(c.now_ms() >= now + 250);
        assert_eq!(OffsetClock::new(0).offset_ms(), 0);
        let far = OffsetClock::new(u64::MAX - 1);
        assert_eq!(far.advance_ms(10), u64::MAX, "saturates");
        assert_eq!(far.now_ms(), i64::MAX);
    }

    /// Whether `task` has finished within `ms` of real time.
    async fn done_within(task: &mut tokio::task::JoinHandle<()>, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), task).await.is_ok()
    }

    #[tokio::test]
    async fn an_offset_sleeper_wakes_when_the_offset_moves_past_its_deadline() {
        let c = OffsetClock::new(0);
        let deadline = c.now_ms() + 3_600_000;
        let mut task = tokio::spawn(c.sleep_until(deadline));
        assert!(!done_within(&mut task, 50).await);
        c.advance_ms(3_500_000);
        assert!(!done_within(&mut task, 50).await, "still 100 s short");
        c.advance_ms(100_000);
        assert!(done_within(&mut task, 1_000).await, "woken by the move, not after an hour");
        assert!(done(&mut c.sleep_until(deadline)), "a deadline already reached is no wait");
    }

    #[tokio::test]
    async fn an_offset_sleeper_wakes_when_wall_time_passes() {
        let c = OffsetClock::new(60_000);
        let deadline = c.now_ms() + 20;
        let mut task = tokio::spawn(c.sleep_until(deadline));
        assert!(done_within(&mut task, 1_000).await);
        assert!(c.now_ms() >= deadline);
        // With every clone of the clock gone, the wall time still wakes a sleeper, at the offset it last had.
        let deadline = c.now_ms() + 20;
        let sleep = c.sleep_until(deadline);
        drop(c);
        let started = SystemClock.now_ms();
        tokio::time::timeout(Duration::from_secs(1), sleep).await.expect("woken by the wall clock");
        assert!(SystemClock.now_ms() >= started + 19, "not before its deadline");
    }
}
