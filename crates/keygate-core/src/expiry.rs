//! Keeps a JavaScript-side memo of decisions exact across expiry instants.
//! A key's decision changes when the clock passes its `expiresAt` without any
//! call being made, so a watcher thread raises the `bypass` signal (and bumps
//! the generation) shortly before each expiry instant and lowers it once the
//! instant has passed. While the store clock is frozen, time only moves through
//! `set_now`, which bumps the generation itself.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::clock::{system_now, Clock};
use crate::store::Signals;

/// How long before an expiry instant the memo is switched off. It only has to
/// cover the watcher thread's wake-up latency; a wide margin costs nothing but
/// a few native calls.
const MARGIN_MS: i64 = 250;
/// Longest sleep between looks at the wall clock.
const MAX_SLEEP_MS: i64 = 1000;

#[derive(Default)]
struct State {
    deadlines: BinaryHeap<Reverse<i64>>,
    started: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    signals: Arc<Signals>,
    clock: Arc<Clock>,
}

pub struct ExpiryWatch {
    shared: Arc<Shared>,
}

impl ExpiryWatch {
    pub fn new(signals: Arc<Signals>, clock: Arc<Clock>) -> ExpiryWatch {
        let state = Mutex::new(State::default());
        ExpiryWatch { shared: Arc::new(Shared { state, wake: Condvar::new(), signals, clock }) }
    }

    /// Notes that some key expires at `at` (ms since the epoch).
    pub fn schedule(&self, at: i64) {
        if at <= system_now() && self.shared.clock.frozen_at().is_none() {
            return;
        }
        let mut state = self.shared.state.lock();
        let earliest = state.deadlines.peek().is_none_or(|&Reverse(t)| at < t);
        state.deadlines.push(Reverse(at));
        if !state.started {
            state.started = true;
            let shared = self.shared.clone();
            std::thread::Builder::new()
                .name("keygate-expiry".into())
                .spawn(move || watch(&shared))
                .expect("spawn the expiry watcher");
        } else if earliest {
            self.shared.wake.notify_one();
        }
    }

    /// The clock was frozen, moved or released: re-evaluate.
    pub fn clock_changed(&self) {
        self.shared.wake.notify_one();
    }
}

impl Drop for ExpiryWatch {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.wake.notify_one();
    }
}

fn watch(shared: &Shared) {
    let mut bypass = false;
    let mut state = shared.state.lock();
    while !state.shutdown {
        let now = system_now();
        // A key is usable while now < expiresAt: an instant is behind us once now > it.
        let mut passed = false;
        while state.deadlines.peek().is_some_and(|&Reverse(t)| t < now) {
            state.deadlines.pop();
            passed = true;
        }
        // Woken late (a paused process, a suspended machine, a clock stepped
        // forward): an instant passed without the bypass. Tell the memo now.
        if passed && !bypass {
            shared.signals.bump();
        }
        let frozen = shared.clock.frozen_at().is_some();
        let next = state.deadlines.peek().map(|&Reverse(t)| t);
        let want_bypass = !frozen && next.is_some_and(|t| t - now <= MARGIN_MS);
        if want_bypass != bypass {
            bypass = want_bypass;
            shared.signals.bypass.store(bypass as u32, Ordering::Release);
            shared.signals.bump();
        }
        match next {
            Some(t) if !frozen => {
                // Waits run on the monotonic clock and instants on the wall clock, so
                // never sleep long: a wall-clock step is noticed within MAX_SLEEP_MS.
                let wait_ms = if bypass { t - now + 1 } else { t - now - MARGIN_MS };
                let wait_ms = wait_ms.clamp(1, MAX_SLEEP_MS);
                shared.wake.wait_for(&mut state, Duration::from_millis(wait_ms as u64));
            }
            _ => shared.wake.wait(&mut state),
        }
    }
    if bypass {
        shared.signals.bypass.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_wake_still_tells_the_memo() {
        let signals = Arc::new(Signals::default());
        let clock = Arc::new(Clock::new(None));
        let watch = ExpiryWatch::new(signals.clone(), clock);
        // An instant that is already behind the watcher when it first looks,
        // as after a pause: it must still bump the generation.
        let mut state = watch.shared.state.lock();
        state.deadlines.push(Reverse(system_now() - 10));
        state.deadlines.push(Reverse(system_now() + 60_000));
        drop(state);
        watch.schedule(system_now() + 120_000);
        let start = std::time::Instant::now();
        while signals.generation.load(Ordering::Acquire) == 0 {
            assert!(start.elapsed() < Duration::from_secs(2), "the passed instant was never signalled");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(signals.bypass.load(Ordering::Acquire), 0);
    }

    #[test]
    fn bypass_covers_the_expiry_instant() {
        let signals = Arc::new(Signals::default());
        let watch = ExpiryWatch::new(signals.clone(), Arc::new(Clock::new(None)));
        let at = system_now() + 400;
        watch.schedule(at);
        let mut saw_bypass_before = false;
        while system_now() <= at {
            if signals.bypass.load(Ordering::Acquire) == 1 {
                saw_bypass_before = true;
            }
            // Whenever the instant is this close, the memo must already be off.
            if at - system_now() < 50 {
                assert_eq!(signals.bypass.load(Ordering::Acquire), 1, "bypass raised before the instant");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(saw_bypass_before);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(signals.bypass.load(Ordering::Acquire), 0, "bypass lowered after the instant");
        assert!(signals.generation.load(Ordering::Acquire) >= 2);
    }
}
