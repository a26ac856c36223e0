//! The expiry watch: keeps the JavaScript memo of decisions exact across expiry instants,
//! without depending on a thread being scheduled at the right moment.
//!
//! A key's decision changes when the clock passes its `expiresAt` without any
//! call being made. Two rules keep a remembered decision from outliving it:
//! - the core marks a decision *transient* (not to be remembered) when its key
//!   expires within [`MEMO_HORIZON_MS`] of the instant the decision used;
//! - this watcher bumps the generation (emptying the memo) at some moment within
//!   the horizon before each expiry instant.
//!
//! A decision remembered at `t0` has `expiresAt - t0 > MEMO_HORIZON_MS`, so a bump
//! made once the wall clock reads `expiresAt - MEMO_HORIZON_MS` or later comes
//! after it, and drops it before the instant. The watcher wakes at the start of
//! that window (two ms in, see `WINDOW_MARGIN_MS`): it has the whole horizon as
//! slack, not a few milliseconds, and the memo stays on for everyone else around
//! each expiry instant.
//!
//! While the store clock is frozen, time only moves through `set_now`, which
//! bumps the generation itself. If the watcher cannot run (its thread cannot be
//! started, or it failed), the memo is switched off ([`Signals::MEMO_UNSAFE`]):
//! every check goes to the core, whose answers do not depend on this thread.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use super::Signals;
use crate::clock::Clock;
use crate::error::{Error, ErrorCode};
use crate::incident::{Reporter, Task};
use crate::registry::Registry;

/// A decision whose key expires within this many ms of the decision's instant is
/// not remembered; the watcher empties the memo within this window before each
/// expiry instant. Keys are rarely checked in their last two seconds, so the cost
/// is nil; the window is the watcher's slack under CPU load.
pub const MEMO_HORIZON_MS: i64 = 2_000;
/// Longest sleep between looks at the wall clock (which may be stepped).
const MAX_SLEEP_MS: i64 = 1000;
/// Two looks read the wall and monotonic clocks a moment apart: a step back of the wall
/// clock smaller than this (ns) may go unnoticed.
const STEP_TOLERANCE_NS: i64 = 1_000_000;
/// The watcher bumps once the wall clock reads this many ms into an instant's window rather
/// than at its opening: read before the window after that bump, the clock has been stepped
/// back by more than [`STEP_TOLERANCE_NS`], which the next look notices.
const WINDOW_MARGIN_MS: i64 = 2;
/// Instants kept beyond twice the keys held before those of keys gone are forgotten.
const SPARE_INSTANTS: usize = 1024;

#[derive(Default)]
struct State {
    /// Expiry instants of the keys held (one entry per instant), passed ones too.
    deadlines: BTreeSet<i64>,
    /// Every deadline up to this instant has had a bump within its window.
    armed_until: Option<i64>,
    /// The wall clock (ns since the epoch) and the monotonic clock at the last look: the wall
    /// clock advancing less than the monotonic one since then was stepped back.
    last_look: Option<(i64, Instant)>,
    started: bool,
    shutdown: bool,
    /// Tests: make the watcher fail, as a defect would.
    #[cfg(test)]
    fail: bool,
    /// Tests: the wall clock as the watcher sees it, stepped by this many ms.
    #[cfg(test)]
    step_ms: i64,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    signals: Arc<Signals>,
    clock: Arc<Clock>,
    reporter: Arc<Reporter>,
}

pub struct ExpiryWatch {
    shared: Arc<Shared>,
}

impl ExpiryWatch {
    pub(crate) fn new(signals: Arc<Signals>, clock: Arc<Clock>, reporter: Arc<Reporter>) -> ExpiryWatch {
        let state = Mutex::new(State::default());
        ExpiryWatch { shared: Arc::new(Shared { state, wake: Condvar::new(), signals, clock, reporter }) }
    }

    /// Notes that some key expires at `at` (ms since the epoch).
    /// An instant already passed is kept too: a wall clock stepped back makes it
    /// lie ahead again, and a decision remembered meanwhile must not outlive it.
    pub fn schedule(&self, at: i64) {
        let mut state = self.shared.state.lock();
        let from = state.armed_until.map_or(Unbounded, Excluded);
        let earliest = state.deadlines.range((from, Unbounded)).next().is_none_or(|&t| at < t);
        state.deadlines.insert(at);
        if state.started {
            if earliest {
                self.shared.wake.notify_one();
            }
            return;
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new().name("keygate-expiry".into()).spawn(move || run(shared));
        state.started = spawned.is_ok();
        drop(state);
        match spawned {
            Ok(_) => {
                if self.shared.signals.lower(Signals::MEMO_UNSAFE) {
                    self.shared.reporter.recover(Task::Expiry);
                }
            }
            // The process is out of threads (its limit, a cgroup's): a resource, not a defect.
            Err(e) => memo_off(&self.shared, ErrorCode::StoreIo, format!("cannot start the expiry watcher thread ({e})")),
        }
    }

    /// Forgets the instants that no key in `registry` expires at (keys deleted, or given another
    /// expiry: each such change bumped the generation itself), once the instants outnumber twice
    /// the keys (and [`SPARE_INSTANTS`]); adds none. Otherwise a host that creates and deletes
    /// keys kept every deleted key's instant until it passed, up to the longest lifetime.
    pub(crate) fn forget_gone(&self, registry: &Registry) {
        let bound = registry.key_count().saturating_mul(2).saturating_add(SPARE_INSTANTS);
        let mut state = self.shared.state.lock();
        if state.deadlines.len() <= bound {
            return;
        }
        let held: HashSet<i64> = registry.keys().map(|key| key.expires_at).collect();
        state.deadlines.retain(|at| held.contains(at));
    }

    #[cfg(test)]
    pub(crate) fn instants(&self) -> usize {
        self.shared.state.lock().deadlines.len()
    }

    /// The clock was frozen, moved or released: re-evaluate.
    pub fn clock_changed(&self) {
        self.shared.wake.notify_one();
    }

    #[cfg(test)]
    fn make_fail(&self) {
        self.shared.state.lock().fail = true;
        self.shared.wake.notify_one();
    }
}

impl ExpiryWatch {
    /// Ends the watcher thread (a closed store needs none; it would otherwise
    /// live until the store's last handle is collected).
    pub fn stop(&self) {
        self.shared.state.lock().shutdown = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for ExpiryWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Switches the memo off (answers stay exact: every check goes to the core) and says why.
fn memo_off(shared: &Shared, code: ErrorCode, why: String) {
    shared.signals.raise(Signals::MEMO_UNSAFE);
    let message = format!("{why}; decisions are no longer remembered until it runs again (answers stay exact)");
    shared.reporter.fail(Task::Expiry, Error::new(code, message));
}

/// The watcher thread: never ends silently. A failure switches the memo off and
/// lets the next `schedule` start a new watcher.
fn run(shared: Arc<Shared>) {
    if catch_unwind(AssertUnwindSafe(|| watch(&shared))).is_err() {
        // The memo goes off before the watcher counts as stopped: a `schedule` in between would
        // start a new watcher (switching the memo on), which this switching off would then undo,
        // leaving the memo off for good beside a running watcher, its recovery never told.
        memo_off(&shared, ErrorCode::Internal, "the expiry watcher failed".to_string());
        shared.state.lock().started = false;
    }
}

fn watch(shared: &Shared) {
    let mut state = shared.state.lock();
    while !state.shutdown {
        #[cfg(test)]
        if state.fail {
            state.fail = false;
            drop(state);
            panic!("expiry watcher failure injected by a test");
        }
        if shared.clock.frozen_at().is_some() {
            shared.wake.wait(&mut state);
            continue;
        }
        let looked = Instant::now();
        let wall = wall_ns();
        #[cfg(test)]
        let wall = wall.saturating_add(state.step_ms.saturating_mul(1_000_000));
        let now = wall / 1_000_000;
        // Stepped back, the clock makes earlier bumps precede decisions still to
        // come before those instants: arm every window again (instants passed are
        // kept for this: they may lie ahead again). And a key remembered as expired
        // may be usable again: empty the memo now. A step back shorter than the sleep
        // since the last look leaves the clock past that look's reading, so the wall
        // clock is compared with the monotonic one, not with its own last reading.
        let stepped_back = state.last_look.is_some_and(|(last_wall, last_looked)| {
            let elapsed = i64::try_from(looked.saturating_duration_since(last_looked).as_nanos()).unwrap_or(i64::MAX);
            wall < last_wall.saturating_add(elapsed).saturating_sub(STEP_TOLERANCE_NS)
        });
        if stepped_back {
            state.armed_until = None;
            shared.signals.bump();
        }
        state.last_look = Some((wall, looked));
        let window_end = now.saturating_add(MEMO_HORIZON_MS - WINDOW_MARGIN_MS);
        let from = state.armed_until.map_or(Unbounded, Excluded);
        // Instants within the horizon (or passed while the thread was held up)
        // that have had no bump yet: one bump now covers them all.
        if state.deadlines.range((from, Included(window_end))).next().is_some() {
            shared.signals.bump();
            state.armed_until = Some(window_end);
        }
        // The instants behind us stay (armed: a clock stepped back re-arms them);
        // `forget_gone` drops those no key expires at.
        let from = state.armed_until.map_or(Unbounded, Excluded);
        match state.deadlines.range((from, Unbounded)).next().copied() {
            Some(t) => {
                // Waits run on the monotonic clock and instants on the wall clock, so
                // never sleep long: a wall-clock step is noticed within MAX_SLEEP_MS.
                let wait_ms = t.saturating_sub(MEMO_HORIZON_MS - WINDOW_MARGIN_MS).saturating_sub(now).clamp(1, MAX_SLEEP_MS);
                shared.wake.wait_for(&mut state, Duration::from_millis(wait_ms.unsigned_abs()));
            }
            // Only armed instants left: look again (a step back) in a while, or when woken.
            None if !state.deadlines.is_empty() => {
                shared.wake.wait_for(&mut state, Duration::from_millis(MAX_SLEEP_MS.unsigned_abs()));
            }
            None => shared.wake.wait(&mut state),
        }
    }
}

/// The wall clock in ns since the epoch.
fn wall_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::clock::system_now;
    use crate::incident::Incident;

    fn watcher() -> (Arc<Signals>, ExpiryWatch, Arc<Mutex<Vec<Incident>>>) {
        let signals = Arc::new(Signals::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reporter = Arc::new(Reporter::new(Some(Arc::new(move |i: &Incident| sink.lock().push(i.clone())))));
        let watch = ExpiryWatch::new(signals.clone(), Arc::new(Clock::new(None)), reporter);
        (signals, watch, seen)
    }

    fn generation(signals: &Signals) -> u32 {
        signals.generation.load(Ordering::Acquire)
    }

    #[test]
    fn a_late_wake_still_tells_the_memo() {
        let (signals, watch, _) = watcher();
        // An instant that is already behind the watcher when it first looks,
        // as after a pause: it must still bump the generation.
        watch.shared.state.lock().deadlines.insert(system_now() - 10);
        watch.schedule(system_now() + 120_000);
        let start = std::time::Instant::now();
        while generation(&signals) == 0 {
            assert!(start.elapsed() < Duration::from_secs(2), "the passed instant was never signalled");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(signals.flags.load(Ordering::Acquire), 0, "the memo stays on");
    }

    #[test]
    fn the_memo_is_emptied_within_the_horizon_before_each_instant_and_never_switched_off() {
        let (signals, watch, _) = watcher();
        let at = system_now() + MEMO_HORIZON_MS + 300;
        watch.schedule(at);
        let before = generation(&signals);
        let mut bumped_at = None;
        while system_now() < at {
            if bumped_at.is_none() && generation(&signals) != before {
                bumped_at = Some(system_now());
            }
            assert_eq!(signals.flags.load(Ordering::Acquire), 0, "the memo is never switched off around an expiry");
            std::thread::sleep(Duration::from_millis(2));
        }
        let bumped_at = bumped_at.expect("the generation was bumped before the instant");
        assert!(bumped_at >= at - MEMO_HORIZON_MS, "bumped at {bumped_at}, before the window opening at {}", at - MEMO_HORIZON_MS);
        assert!(bumped_at < at, "bumped at {bumped_at}, after the instant {at}");
    }

    /// Steps the wall clock the watcher sees by `step_ms` and returns the instants (on the
    /// stepped clock) at which the generation moved, until the stepped clock reaches `until`.
    fn bumps_after_a_step(signals: &Signals, watch: &ExpiryWatch, step_ms: i64, until: i64) -> Vec<i64> {
        let seen = generation(signals);
        watch.shared.state.lock().step_ms = step_ms;
        watch.clock_changed();
        bumps_until(signals, seen, step_ms, until)
    }

    /// The instants (on the clock stepped by `step_ms`) at which the generation moved from `seen`
    /// on, until that clock reaches `until`.
    fn bumps_until(signals: &Signals, mut seen: u32, step_ms: i64, until: i64) -> Vec<i64> {
        let mut bumps = Vec::new();
        while system_now() + step_ms < until {
            let now = generation(signals);
            if now != seen {
                seen = now;
                bumps.push(system_now() + step_ms);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        bumps
    }

    #[test]
    fn a_clock_stepped_back_empties_the_memo_and_re_arms_instants_passed() {
        let (signals, watch, _) = watcher();
        let at = system_now() + 200;
        watch.schedule(at);
        std::thread::sleep(Duration::from_millis(500));
        // Stepped back 5 s, the key is usable again until `at`: a decision remembered as
        // expired must go at once, and one remembered as allowed before `at` is reached.
        // (5 s, not 3: the bump for the step must come before the horizon opens, and a watcher
        // woken late on a loaded machine had only 0.7 s for it.)
        let bumps = bumps_after_a_step(&signals, &watch, -5_000, at);
        assert!(bumps.first().is_some_and(|&t| t < at - MEMO_HORIZON_MS), "no bump as the clock was stepped back: {bumps:?}");
        assert!(bumps.iter().any(|&t| t >= at - MEMO_HORIZON_MS), "no bump within the horizon before {at}: {bumps:?}");
    }

    #[test]
    fn a_clock_stepped_back_by_less_than_the_watchers_sleep_is_noticed() {
        let (signals, watch, _) = watcher();
        let at = system_now() + MEMO_HORIZON_MS + 300;
        watch.schedule(at);
        let start = std::time::Instant::now();
        while generation(&signals) == 0 {
            assert!(start.elapsed() < Duration::from_secs(2), "no bump as the window opened");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Stepped back 500 ms just after that bump, the clock reads before the window again
        // (a decision remembered now would outlive `at`), yet past the watcher's last look
        // when it next wakes (a step wakes no one: the watcher sleeps on).
        let seen = generation(&signals);
        watch.shared.state.lock().step_ms = -500;
        let bumps = bumps_until(&signals, seen, -500, at);
        assert!(bumps.iter().any(|&t| t >= at - MEMO_HORIZON_MS), "no bump within the horizon before {at}: {bumps:?}");
    }

    #[test]
    fn an_instant_already_passed_when_scheduled_is_re_armed_by_a_clock_stepped_back() {
        let (signals, watch, _) = watcher();
        // A key loaded (or changed by another process) after it expired.
        let at = system_now() - 500;
        watch.schedule(at);
        std::thread::sleep(Duration::from_millis(100));
        let bumps = bumps_after_a_step(&signals, &watch, -3_000, at);
        assert!(bumps.iter().any(|&t| t >= at - MEMO_HORIZON_MS), "no bump within the horizon before {at}: {bumps:?}");
    }

    #[test]
    fn instants_within_one_horizon_share_one_bump() {
        let (signals, watch, _) = watcher();
        let at = system_now() + 300;
        for i in 0..50 {
            watch.schedule(at + i * 10);
            watch.schedule(at + i * 10);
        }
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(generation(&signals), 1, "one bump for instants within one horizon");
    }

    #[test]
    fn a_failed_watcher_switches_the_memo_off_says_so_once_and_a_new_one_switches_it_on() {
        let (signals, watch, seen) = watcher();
        watch.schedule(system_now() + 60_000);
        watch.make_fail();
        let start = std::time::Instant::now();
        while watch.shared.state.lock().started {
            assert!(start.elapsed() < Duration::from_secs(2), "the watcher did not fail");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(signals.flags.load(Ordering::Acquire) & Signals::MEMO_UNSAFE, 0, "the memo is off");
        {
            let seen = seen.lock();
            assert_eq!(seen.len(), 1);
            let incident = seen.first().map(|i| (i.task, i.error.code, i.recovered));
            assert_eq!(incident, Some((Task::Expiry, ErrorCode::Internal, false)));
        }
        // The next key scheduled starts a new watcher: the memo is on again.
        watch.schedule(system_now() + 60_000);
        assert_eq!(signals.flags.load(Ordering::Acquire), 0);
        let seen = seen.lock();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.get(1).map(|i| (i.task, i.recovered)), Some((Task::Expiry, true)));
    }

    #[test]
    fn a_failed_watcher_counts_as_stopped_only_once_the_memo_is_off_and_the_failure_told() {
        // What the failure's report sees of the watcher: a `schedule` that found it stopped
        // before the memo went off would start a new one whose memo the failure then switched off.
        let signals = Arc::new(Signals::default());
        let shared_slot: Arc<Mutex<Option<Arc<Shared>>>> = Arc::new(Mutex::new(None));
        let at_report: Arc<Mutex<Vec<(bool, u32)>>> = Arc::new(Mutex::new(Vec::new()));
        let (slot, sink) = (shared_slot.clone(), at_report.clone());
        let reporter = Arc::new(Reporter::new(Some(Arc::new(move |_: &Incident| {
            if let Some(shared) = slot.lock().as_ref() {
                sink.lock().push((shared.state.lock().started, shared.signals.flags.load(Ordering::Acquire)));
            }
        }))));
        let watch = ExpiryWatch::new(signals.clone(), Arc::new(Clock::new(None)), reporter);
        *shared_slot.lock() = Some(watch.shared.clone());
        watch.schedule(system_now() + 60_000);
        watch.make_fail();
        let start = std::time::Instant::now();
        while at_report.lock().is_empty() || watch.shared.state.lock().started {
            assert!(start.elapsed() < Duration::from_secs(5), "the watcher's failure was not told");
            std::thread::sleep(Duration::from_millis(5));
        }
        let seen = at_report.lock().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen.first().map(|&(started, _)| started), Some(true), "the watcher counted as stopped before the memo went off");
        assert_ne!(seen.first().map_or(0, |&(_, flags)| flags) & Signals::MEMO_UNSAFE, 0, "the failure was told before the memo went off");
        *shared_slot.lock() = None;
    }
}
