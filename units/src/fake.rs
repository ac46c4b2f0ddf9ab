//! A recording stand-in for systemd, for unit tests of code above this crate. It models just
//! enough: units become `loaded` when a reload finds them among the declared files, start/stop
//! flip `ActiveState`, and every call is recorded in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use crate::{Error, JobResult, ListedUnit, Systemd, UnitState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Reload,
    Start(String),
    Stop(String),
    Restart(String),
    ResetFailed(String),
}

type ReloadHook = Box<dyn Fn() -> Vec<String> + Send + Sync>;

pub struct FakeSystemd {
    /// If set, a reload asks it which units exist (e.g. by reading a unit directory).
    reload_hook: Mutex<Option<ReloadHook>>,
    calls: Mutex<Vec<Call>>,
    /// Units a reload would find (what Quadlet would generate from the files on disk).
    available: Mutex<BTreeSet<String>>,
    /// Units Quadlet would reject.
    rejected: Mutex<BTreeSet<String>>,
    loaded: Mutex<BTreeSet<String>>,
    states: Mutex<BTreeMap<String, UnitState>>,
    changes: broadcast::Sender<String>,
    reloads: AtomicU64,
    invocations: AtomicU64,
}

impl std::fmt::Debug for FakeSystemd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSystemd")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl Default for FakeSystemd {
    fn default() -> Self {
        FakeSystemd {
            reload_hook: Mutex::default(),
            calls: Mutex::default(),
            available: Mutex::default(),
            rejected: Mutex::default(),
            loaded: Mutex::default(),
            states: Mutex::default(),
            changes: broadcast::channel(1024).0,
            reloads: AtomicU64::new(0),
            invocations: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeSystemd {
    /// Declares the units that the next reload will load (replacing the previous set).
    pub fn set_available(&self, units: impl IntoIterator<Item = String>) {
        *lock(&self.available) = units.into_iter().collect();
    }

    /// Lets each reload find its units itself, as systemd runs its generators.
    pub fn on_reload(&self, hook: impl Fn() -> Vec<String> + Send + Sync + 'static) {
        *lock(&self.reload_hook) = Some(Box::new(hook));
    }

    /// Makes the next reload report `unit` as `bad-setting`, as Quadlet's rejections look.
    pub fn reject(&self, unit: &str) {
        lock(&self.rejected).insert(unit.to_owned());
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    pub fn clear_calls(&self) {
        lock(&self.calls).clear();
    }

    fn set_active(&self, unit: &str, active: bool) -> JobResult {
        if !lock(&self.loaded).contains(unit) {
            return JobResult::Failed;
        }
        let mut states = lock(&self.states);
        let state = states.entry(unit.to_owned()).or_default();
        if active && state.active_state != "active" {
            let n = self.invocations.fetch_add(1, Ordering::Relaxed) + 1;
            state.invocation_id = format!("{n:032x}");
            state.main_started_us = n;
        }
        state.active_state = if active { "active" } else { "inactive" }.to_owned();
        state.sub_state = if active { "running" } else { "dead" }.to_owned();
        drop(states);
        let _ = self.changes.send(unit.to_owned());
        JobResult::Done
    }
}

impl Systemd for FakeSystemd {
    async fn reload(&self) -> Result<(), Error> {
        lock(&self.calls).push(Call::Reload);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = lock(&self.reload_hook).as_ref() {
            *lock(&self.available) = hook().into_iter().collect();
        }
        let available = lock(&self.available).clone();
        let rejected = lock(&self.rejected).clone();
        *lock(&self.loaded) = available.difference(&rejected).cloned().collect();
        Ok(())
    }

    async fn unit_state(&self, unit: &str) -> Result<UnitState, Error> {
        let load_state = if lock(&self.loaded).contains(unit) {
            "loaded"
        } else if lock(&self.rejected).contains(unit) {
            "bad-setting"
        } else {
            "not-found"
        };
        let mut state = lock(&self.states)
            .get(unit)
            .cloned()
            .unwrap_or_else(|| UnitState {
                active_state: "inactive".to_owned(),
                sub_state: "dead".to_owned(),
                ..UnitState::default()
            });
        state.name = unit.to_owned();
        state.load_state = load_state.to_owned();
        Ok(state)
    }

    async fn start(&self, unit: &str) -> Result<JobResult, Error> {
        lock(&self.calls).push(Call::Start(unit.to_owned()));
        Ok(self.set_active(unit, true))
    }

    async fn stop(&self, unit: &str) -> Result<JobResult, Error> {
        lock(&self.calls).push(Call::Stop(unit.to_owned()));
        self.set_active(unit, false);
        Ok(JobResult::Done)
    }

    async fn restart(&self, unit: &str) -> Result<JobResult, Error> {
        lock(&self.calls).push(Call::Restart(unit.to_owned()));
        self.set_active(unit, false);
        Ok(self.set_active(unit, true))
    }

    async fn reset_failed(&self, unit: &str) -> Result<(), Error> {
        lock(&self.calls).push(Call::ResetFailed(unit.to_owned()));
        Ok(())
    }

    async fn list_units(&self, patterns: &[&str]) -> Result<Vec<ListedUnit>, Error> {
        let states = lock(&self.states);
        Ok(lock(&self.loaded)
            .iter()
            .filter(|name| {
                patterns.iter().any(|p| {
                    p.strip_suffix('*')
                        .map_or(*p == name.as_str(), |prefix| name.starts_with(prefix))
                })
            })
            .map(|name| {
                let s = states.get(name).cloned().unwrap_or_default();
                ListedUnit {
                    name: name.clone(),
                    load_state: "loaded".to_owned(),
                    active_state: if s.active_state.is_empty() {
                        "inactive".to_owned()
                    } else {
                        s.active_state
                    },
                    sub_state: s.sub_state,
                }
            })
            .collect())
    }

    fn changes(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    fn reload_count(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }
}
