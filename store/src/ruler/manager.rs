//! The running ruler: which groups run (synchronised with the rule store),
//! one task per group evaluating it at its interval, the alert state file,
//! and the senders.
//!
//! ```text
//!  rule store ──sync (poll_interval, after API writes)──► groups
//!                                                          │ one task each: tick at interval
//!                                                          ▼ (offset by a hash of its name)
//!  evaluation slot ─► blocking pool: eval::query_all ─► lock: eval::apply
//!                                                          │
//!             notifier (bounded) ◄── alerts due ───────────┤
//!       remote writers (bounded) ◄── samples ──────────────┤
//!         state file (≤ 1/s)     ◄── alerts changed ───────┘
//! ```
//!
//! *Invariant: no evaluation runs on the async executor, and at most
//! `max_concurrent_evaluations` run at once.* A group whose evaluation
//! (or its wait for a slot) runs past its next turn skips the turns it
//! missed, counted in `larch_ruler_iterations_missed_total`; it never runs
//! twice at once.
//!
//! When a group changes, its alerts move to the new version (same alert
//! name and query); alerts of rules that are gone, and of removed groups,
//! are sent resolved. When the ruler stops (the store shuts down), nothing
//! is resolved: the state is saved, and restored at the next start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use larch_rules::{RuleGroup, RuleKind};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::alert::AlertState;
use super::config::EvaluationMode;
use super::config::RuleStorageType;
use super::eval::{self, CompiledGroup, EvalEnv, GroupKey, GroupStatus};
use super::http::HttpClient;
use super::notifier::Notifier;
use super::remote_eval::RemoteQuerier;
use super::remote_write::RemoteWriter;
use super::state::{self, SavedGroup, SavedRule, StateFile, StateStore};
use super::storage::{BucketRuleStore, DirRuleStore, RuleStore, StoreError, TenantRules};
use super::{RulerConfig, metrics::one};
use crate::ingester::Ingester;
use crate::metrics::Metrics;
use crate::tenant::TenantId;

/// How long senders may keep sending after the ruler stops.
const SEND_GRACE: Duration = Duration::from_secs(2);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The first tick after `now` of a schedule `offset + k × interval`.
pub fn next_tick(now: i64, interval: i64, offset: i64) -> i64 {
    let k = (now - offset).div_euclid(interval) + 1;
    k * interval + offset
}

/// What group tasks share.
struct Shared {
    config: RulerConfig,
    store: Arc<dyn RuleStore>,
    ingester: Arc<Ingester>,
    metrics: Arc<Metrics>,
    notifier: Option<Arc<Notifier>>,
    writers: Vec<Arc<RemoteWriter>>,
    slots: Arc<Semaphore>,
    /// Alerts changed since the state file was written.
    dirty: AtomicBool,
    /// Where the alert state is kept.
    state: StateStore,
    /// Whether the saved state was read (at the first sync, again at each
    /// sync while the bucket does not answer). No state is written before,
    /// so a state that could not be read yet is never replaced.
    state_loaded: AtomicBool,
    /// State read at startup, taken by each group when it first loads.
    restored: Mutex<HashMap<GroupKey, Vec<SavedRule>>>,
    query_timeout: Duration,
    /// With `ruler.evaluation.mode: remote`, where queries are asked.
    remote: Option<Arc<RemoteQuerier>>,
}

struct Running {
    group: Arc<CompiledGroup>,
    status: Arc<Mutex<GroupStatus>>,
    stop: watch::Sender<bool>,
    cancel: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// The ruler of a store.
pub struct Ruler {
    shared: Arc<Shared>,
    groups: Mutex<BTreeMap<GroupKey, Running>>,
    sync_lock: tokio::sync::Mutex<SyncMemory>,
    stop_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the last sync saw, to log a broken file once and to zero gauges
/// of tenants that left.
#[derive(Default)]
struct SyncMemory {
    errors: HashMap<(String, String), String>,
    tenants: BTreeSet<String>,
}

/// A group as the rules API shows it.
pub struct GroupView {
    /// The group.
    pub group: Arc<CompiledGroup>,
    /// Its state now.
    pub status: GroupStatus,
}

impl Ruler {
    /// Starts the ruler of `ingester`'s store (its `ruler:` configuration)
    /// with the rule store and state `ruler.storage.type` names; must run
    /// inside the runtime. Groups and the saved state are read at the
    /// first [`sync`](Ruler::sync).
    ///
    /// Fails when the TLS files of its clients (Alertmanager, remote
    /// write, the query node) do not load.
    pub fn start(ingester: Arc<Ingester>) -> std::io::Result<Arc<Ruler>> {
        let config = &ingester.config;
        let (store, state): (Arc<dyn RuleStore>, StateStore) = match config.ruler.storage.kind {
            RuleStorageType::Local => (
                Arc::new(DirRuleStore::new(config.ruler.rule_dir(&config.data_dir))),
                StateStore::File(state::path(&config.data_dir)),
            ),
            RuleStorageType::Bucket => (
                Arc::new(BucketRuleStore::new(ingester.bucket.clone())),
                StateStore::Bucket {
                    bucket: ingester.bucket.clone(),
                    key: state::object_key(&config.ruler.instance()),
                },
            ),
        };
        Ruler::start_with_store(ingester, store, state)
    }

    /// Starts the ruler with another rule store and state.
    pub fn start_with_store(
        ingester: Arc<Ingester>,
        store: Arc<dyn RuleStore>,
        state: StateStore,
    ) -> std::io::Result<Arc<Ruler>> {
        let rc = ingester.config.ruler.clone();
        let metrics = ingester.metrics.clone();
        let notifier = if rc.alertmanager_url.0.is_empty() {
            None
        } else {
            let client =
                HttpClient::new(&rc.alertmanager_client.tls(), "ruler.alertmanager_client")?;
            Some(Arc::new(Notifier::new(
                &rc.alertmanager_url.0,
                rc.alertmanager_client.header(),
                rc.notification_queue_capacity,
                rc.notification_timeout.0,
                client,
                metrics.clone(),
            )))
        };
        let writers: Vec<Arc<RemoteWriter>> = if rc.remote_write.enabled {
            rc.remote_write
                .all_clients()
                .into_iter()
                .map(|(name, c)| {
                    RemoteWriter::new(name, c, rc.remote_write.add_org_id_header, metrics.clone())
                        .map(Arc::new)
                })
                .collect::<std::io::Result<_>>()?
        } else {
            Vec::new()
        };
        let remote = match rc.evaluation.mode {
            EvaluationMode::Remote => {
                Some(Arc::new(RemoteQuerier::new(&rc.evaluation.query_frontend)?))
            }
            EvaluationMode::Local => None,
        };
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(rc.max_concurrent_evaluations)),
            query_timeout: ingester.config.query.timeout.0,
            remote,
            config: rc,
            store,
            ingester,
            metrics,
            notifier: notifier.clone(),
            writers: writers.clone(),
            dirty: AtomicBool::new(false),
            state,
            state_loaded: AtomicBool::new(false),
            restored: Mutex::new(HashMap::new()),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let ruler = Arc::new(Ruler {
            shared,
            groups: Mutex::new(BTreeMap::new()),
            sync_lock: tokio::sync::Mutex::new(SyncMemory::default()),
            stop_tx,
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        if let Some(n) = notifier {
            tasks.push(tokio::spawn(n.run(stop_rx.clone(), SEND_GRACE)));
        }
        for w in writers {
            tasks.push(tokio::spawn(w.run(stop_rx.clone(), SEND_GRACE)));
        }
        // The sync loop and the state writer hold a weak reference, so a
        // dropped ruler stops them.
        let weak = Arc::downgrade(&ruler);
        let poll = ruler.shared.config.poll_interval.0;
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(r) = weak.upgrade() else { return };
                r.sync().await;
                drop(r);
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }));
        let weak = Arc::downgrade(&ruler);
        let mut stop = stop_rx;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let Some(r) = weak.upgrade() else { return };
                r.count_alerts();
                if r.shared.state_loaded.load(Ordering::Acquire)
                    && r.shared.dirty.swap(false, Ordering::AcqRel)
                {
                    r.save_state().await;
                }
            }
        }));
        *ruler.tasks.lock() = tasks;
        Ok(ruler)
    }

    /// The rule store (the rules API writes through it).
    pub fn store(&self) -> Arc<dyn RuleStore> {
        self.shared.store.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &RulerConfig {
        &self.shared.config
    }

    /// Every running group with its state, sorted by tenant, namespace
    /// and name.
    pub fn groups(&self) -> Vec<GroupView> {
        let running: Vec<(Arc<CompiledGroup>, Arc<Mutex<GroupStatus>>)> = self
            .groups
            .lock()
            .values()
            .map(|r| (r.group.clone(), r.status.clone()))
            .collect();
        running
            .into_iter()
            .map(|(group, status)| GroupView {
                group,
                status: status.lock().clone(),
            })
            .collect()
    }

    /// Reads the rule store and starts, replaces and stops groups to match
    /// it. Runs every `poll_interval`; the rules API calls it after a write
    /// so that the change is live when it answers.
    pub async fn sync(&self) {
        let mut memory = self.sync_lock.lock().await;
        if *self.stop_tx.borrow() {
            return;
        }
        if !self.shared.state_loaded.load(Ordering::Acquire) {
            self.load_state().await;
        }
        let store = self.shared.store.clone();
        let loaded = match tokio::task::spawn_blocking(move || load_all(store.as_ref())).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Cannot read the rule store; the groups running keep running.");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "Reading the rule store failed.");
                return;
            }
        };
        let cfg = &self.shared.config;
        let mut desired: BTreeMap<GroupKey, RuleGroup> = BTreeMap::new();
        let mut broken: BTreeSet<(String, String)> = BTreeSet::new();
        let mut seen_errors = HashMap::new();
        let mut tenants = BTreeSet::new();
        for (tenant, namespaces) in loaded {
            let t = tenant.as_str().to_string();
            let mut count = 0usize;
            for (ns, groups) in namespaces {
                let groups = match groups {
                    Ok(g) => g,
                    Err(e) => {
                        let key = (t.clone(), ns.clone());
                        if memory.errors.get(&key) != Some(&e) {
                            self.shared.metrics.ruler.rule_file_errors.inc();
                            tracing::error!(tenant = %t, namespace = %ns, error = %e, "A rule file cannot be read; its groups keep running as last read.");
                        }
                        seen_errors.insert(key.clone(), e);
                        broken.insert(key);
                        continue;
                    }
                };
                for g in groups {
                    count += 1;
                    if cfg.max_rule_groups_per_tenant > 0 && count > cfg.max_rule_groups_per_tenant
                    {
                        tracing::warn!(tenant = %t, namespace = %ns, group = %g.name, limit = cfg.max_rule_groups_per_tenant, "Over the tenant's rule group limit; group not loaded.");
                        continue;
                    }
                    if cfg.max_rules_per_rule_group > 0
                        && g.rules.len() > cfg.max_rules_per_rule_group
                    {
                        tracing::warn!(tenant = %t, namespace = %ns, group = %g.name, limit = cfg.max_rules_per_rule_group, "Over the rules per group limit; group not loaded.");
                        continue;
                    }
                    desired.insert(
                        GroupKey {
                            tenant: t.clone(),
                            namespace: ns.clone(),
                            group: g.name.clone(),
                        },
                        g,
                    );
                }
            }
            tenants.insert(t);
        }
        memory.errors = seen_errors;
        self.apply(desired, &broken).await;
        self.set_gauges(&mut memory, tenants);
    }

    /// Starts, replaces and stops groups to match `desired`; groups of a
    /// `broken` namespace keep running.
    async fn apply(
        &self,
        desired: BTreeMap<GroupKey, RuleGroup>,
        broken: &BTreeSet<(String, String)>,
    ) {
        let default_ms = self.shared.config.evaluation_interval.0.as_millis() as i64;
        let mut stopped = Vec::new();
        let mut start = Vec::new();
        {
            let mut groups = self.groups.lock();
            let keys: Vec<GroupKey> = groups.keys().cloned().collect();
            for key in keys {
                let keep_broken = broken.contains(&(key.tenant.clone(), key.namespace.clone()));
                let same = desired
                    .get(&key)
                    .is_some_and(|g| groups.get(&key).is_some_and(|r| r.group.group == *g));
                if same || (keep_broken && !desired.contains_key(&key)) {
                    continue;
                }
                if let Some(r) = groups.remove(&key) {
                    let _ = r.stop.send(true);
                    r.cancel.store(true, Ordering::Release);
                    stopped.push((key.clone(), r));
                }
            }
            for (key, g) in desired {
                if !groups.contains_key(&key) {
                    start.push((key, g));
                }
            }
        }
        // Old versions stop (an evaluation in progress is cancelled), and
        // hand their alerts over.
        let mut old_status: HashMap<GroupKey, (Arc<CompiledGroup>, GroupStatus)> = HashMap::new();
        for (key, r) in stopped {
            let _ = r.task.await;
            let status = r.status.lock().clone();
            old_status.insert(key, (r.group, status));
        }
        let now = now_ms();
        let mut resolved = Vec::new();
        for (key, g) in start {
            let compiled = Arc::new(CompiledGroup::new(key.clone(), g, default_ms));
            let mut status = GroupStatus::new(&compiled);
            if let Some((old_group, old)) = old_status.remove(&key) {
                let leftover = carry_over(&old_group, old, &compiled, &mut status);
                resolved.extend(eval::resolve_all(
                    &leftover,
                    &self.shared.config.external_labels,
                    now,
                ));
            } else if let Some(saved) = self.shared.restored.lock().remove(&key) {
                restore(&compiled, saved, &mut status);
                self.shared.dirty.store(true, Ordering::Release);
            }
            self.spawn_group(compiled, status);
        }
        for (_, (_, old)) in old_status {
            resolved.extend(eval::resolve_all(
                &old,
                &self.shared.config.external_labels,
                now,
            ));
            self.shared.dirty.store(true, Ordering::Release);
        }
        if let Some(n) = &self.shared.notifier {
            n.send(resolved);
        }
    }

    fn spawn_group(&self, group: Arc<CompiledGroup>, status: GroupStatus) {
        let status = Arc::new(Mutex::new(status));
        let (stop, stop_rx) = watch::channel(false);
        let cancel = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run_group(
            self.shared.clone(),
            group.clone(),
            status.clone(),
            cancel.clone(),
            stop_rx,
        ));
        self.groups.lock().insert(
            group.key.clone(),
            Running {
                group,
                status,
                stop,
                cancel,
                task,
            },
        );
    }

    fn set_gauges(&self, memory: &mut SyncMemory, tenants: BTreeSet<String>) {
        let m = &self.shared.metrics;
        let mut per: BTreeMap<String, (i64, i64)> =
            tenants.iter().map(|t| (t.clone(), (0, 0))).collect();
        for r in self.groups.lock().values() {
            let e = per.entry(r.group.key.tenant.clone()).or_default();
            e.0 += 1;
            e.1 += r.group.group.rules.len() as i64;
        }
        for gone in memory.tenants.difference(&tenants) {
            per.entry(gone.clone()).or_default();
        }
        // Tenants sharing the `<other>` label value add up.
        let mut by_label: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (t, (g, r)) in &per {
            let l = m.tenant_labels.value(t);
            let e = by_label.entry(l).or_default();
            e.0 += g;
            e.1 += r;
        }
        for (l, (g, r)) in by_label {
            m.ruler.rule_groups.get_or_create(&one("tenant", &l)).set(g);
            m.ruler.rules.get_or_create(&one("tenant", &l)).set(r);
        }
        memory.tenants = tenants;
    }

    fn count_alerts(&self) {
        let (mut pending, mut firing) = (0i64, 0i64);
        for v in self.groups() {
            for r in &v.status.rules {
                for a in r.active.values() {
                    match a.state {
                        AlertState::Pending => pending += 1,
                        AlertState::Firing => firing += 1,
                        AlertState::Inactive => {}
                    }
                }
            }
        }
        let m = &self.shared.metrics.ruler.alerts;
        m.get_or_create(&one("state", "pending")).set(pending);
        m.get_or_create(&one("state", "firing")).set(firing);
    }

    fn state_file(&self, views: Vec<GroupView>) -> StateFile {
        let mut groups = Vec::new();
        for v in views {
            let rules: Vec<SavedRule> = v
                .group
                .group
                .rules
                .iter()
                .zip(&v.status.rules)
                .filter_map(|(rule, st)| match &rule.kind {
                    RuleKind::Alerting { alert, .. } if !st.active.is_empty() => Some(SavedRule {
                        alert: alert.clone(),
                        expr: rule.expr.clone(),
                        alerts: st.active.values().cloned().collect(),
                    }),
                    _ => None,
                })
                .collect();
            if !rules.is_empty() {
                let k = &v.group.key;
                groups.push(SavedGroup {
                    tenant: k.tenant.clone(),
                    namespace: k.namespace.clone(),
                    group: k.group.clone(),
                    rules,
                });
            }
        }
        // Groups restored from the last file whose rules are not loaded
        // (yet) keep their state.
        for (k, rules) in self.shared.restored.lock().iter() {
            groups.push(SavedGroup {
                tenant: k.tenant.clone(),
                namespace: k.namespace.clone(),
                group: k.group.clone(),
                rules: rules.clone(),
            });
        }
        StateFile {
            version: 1,
            saved_at_ms: now_ms(),
            groups,
        }
    }

    /// Reads the saved alert state; groups not running yet take theirs
    /// back when they start.
    async fn load_state(&self) {
        let shared = self.shared.clone();
        let tolerance = shared.config.for_outage_tolerance.as_nanos_i64() / 1_000_000;
        let r = tokio::task::spawn_blocking(move || shared.state.load(now_ms(), tolerance)).await;
        let restored = match r {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(place = %self.shared.state.describe(), error = %e, "Cannot read the ruler's alert state; it is neither used nor replaced until it can be read, at the next poll.");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "Reading the ruler's alert state failed.");
                return;
            }
        };
        let running: BTreeSet<GroupKey> = self.groups.lock().keys().cloned().collect();
        let restored: HashMap<GroupKey, Vec<SavedRule>> = restored
            .into_iter()
            .filter(|(k, _)| !running.contains(k))
            .collect();
        if !restored.is_empty() {
            tracing::info!(
                groups = restored.len(),
                "Restoring alert state saved before the restart."
            );
        }
        *self.shared.restored.lock() = restored;
        self.shared.state_loaded.store(true, Ordering::Release);
    }

    async fn save_state(&self) {
        self.save_views(self.groups()).await;
    }

    async fn save_views(&self, views: Vec<GroupView>) {
        if !self.shared.state_loaded.load(Ordering::Acquire) {
            return;
        }
        let file = self.state_file(views);
        let shared = self.shared.clone();
        let result = tokio::task::spawn_blocking(move || shared.state.save(&file)).await;
        let err = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.shared.metrics.ruler.state_write_failures.inc();
        self.shared.dirty.store(true, Ordering::Release);
        tracing::error!(place = %self.shared.state.describe(), error = %err, "Cannot write the ruler's alert state; retrying.");
    }

    /// Stops every group (an evaluation in progress is cancelled), saves
    /// the alert state, and lets the senders finish within a short grace,
    /// all by `deadline`. Alerts are not resolved.
    pub async fn stop(&self, deadline: tokio::time::Instant) {
        let _ = self.stop_tx.send(true);
        let running: Vec<Running> = std::mem::take(&mut *self.groups.lock())
            .into_values()
            .collect();
        let mut statuses = Vec::new();
        for r in running {
            let _ = r.stop.send(true);
            r.cancel.store(true, Ordering::Release);
            let _ = tokio::time::timeout_at(deadline, r.task).await;
            statuses.push((r.group, r.status));
        }
        let views = statuses
            .into_iter()
            .map(|(group, status)| GroupView {
                group,
                status: status.lock().clone(),
            })
            .collect();
        let _ = tokio::time::timeout_at(deadline, self.save_views(views)).await;
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
    }
}

/// Every tenant's namespaces, from the store.
fn load_all(store: &dyn RuleStore) -> Result<Vec<(TenantId, TenantRules)>, StoreError> {
    let mut out = Vec::new();
    for t in store.tenants()? {
        let rules = store.load(&t)?;
        out.push((t, rules));
    }
    Ok(out)
}

/// Moves the alerts of `old` into `new` rule by rule (same alert name and
/// query, in order); returns what is left (to be resolved).
fn carry_over(
    old_group: &CompiledGroup,
    mut old: GroupStatus,
    new_group: &CompiledGroup,
    new: &mut GroupStatus,
) -> GroupStatus {
    for (i, rule) in new_group.group.rules.iter().enumerate() {
        let RuleKind::Alerting { alert, .. } = &rule.kind else {
            continue;
        };
        let found = old_group.group.rules.iter().enumerate().find(|(j, r)| {
            matches!(&r.kind, RuleKind::Alerting { alert: a, .. } if a == alert)
                && r.expr == rule.expr
                && old.rules.get(*j).is_some_and(|s| !s.active.is_empty())
        });
        if let Some((j, _)) = found
            && let (Some(from), Some(to)) = (old.rules.get_mut(j), new.rules.get_mut(i))
        {
            to.active = std::mem::take(&mut from.active);
        }
    }
    old
}

/// Puts saved alerts into a group's fresh state.
fn restore(group: &CompiledGroup, saved: Vec<SavedRule>, status: &mut GroupStatus) {
    let mut saved = saved;
    for (i, rule) in group.group.rules.iter().enumerate() {
        let RuleKind::Alerting { alert, .. } = &rule.kind else {
            continue;
        };
        if let Some(pos) = saved
            .iter()
            .position(|s| &s.alert == alert && s.expr == rule.expr)
            && let Some(st) = status.rules.get_mut(i)
        {
            let s = saved.swap_remove(pos);
            st.active = s
                .alerts
                .into_iter()
                .map(|a| (a.labels.clone(), a))
                .collect();
        }
    }
}

/// One group: evaluate at every tick until stopped.
async fn run_group(
    shared: Arc<Shared>,
    group: Arc<CompiledGroup>,
    status: Arc<Mutex<GroupStatus>>,
    cancel: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = group.interval_ms;
    let offset = if group.group.align_evaluation_time_on_interval {
        0
    } else {
        let k = &group.key;
        let h = xxhash_rust::xxh3::xxh3_64(
            format!("{}\u{0}{}\u{0}{}", k.tenant, k.namespace, k.group).as_bytes(),
        );
        (h % interval as u64) as i64
    };
    let tenant = shared.metrics.tenant_label(&group.key.tenant);
    let mut next = next_tick(now_ms(), interval, offset);
    loop {
        let wait = next - now_ms();
        if wait > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        if *stop.borrow() {
            return;
        }
        let ts = next;
        let permit = tokio::select! {
            p = shared.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let started = Instant::now();
        // This evaluation's own flag: raised by a stop or past the query
        // timeout.
        let flag = Arc::new(AtomicBool::new(false));
        let timer = {
            let flag = flag.clone();
            let cancel = cancel.clone();
            let timeout = shared.query_timeout;
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + timeout;
                loop {
                    if cancel.load(Ordering::Acquire) || tokio::time::Instant::now() >= deadline {
                        flag.store(true, Ordering::Release);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        // Remote evaluation asks its queries here (bounded by the same
        // slots and the ruler's stop); the results are applied below.
        let asked = match &shared.remote {
            Some(remote) => tokio::select! {
                r = remote.query_all(&group, ts) => Some(r),
                _ = stop.wait_for(|s| *s) => {
                    timer.abort();
                    return;
                }
            },
            None => None,
        };
        let (sh, g, st, f) = (shared.clone(), group.clone(), status.clone(), flag);
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let limits = sh.ingester.config.limits_for(&g.key.tenant);
            let env = EvalEnv {
                source: sh.ingester.as_ref(),
                max_series: limits.max_query_series,
                external_labels: &sh.config.external_labels,
                external_url: &sh.config.external_url,
                datasource_uid: &sh.config.datasource_uid,
                resend_delay_ms: sh.config.resend_delay.0.as_millis() as i64,
                remote_write: !sh.writers.is_empty(),
                cancel: Some(f),
            };
            let results = match asked {
                Some(r) => r,
                None => eval::query_all(&g, &env, ts),
            };
            let mut st = st.lock();
            eval::apply(&g, &mut st, results, ts, &env)
        })
        .await;
        timer.abort();
        let m = &shared.metrics.ruler;
        m.evaluations.get_or_create(&tenant).inc();
        m.evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        match out {
            Ok(out) => {
                if out.failures > 0 {
                    m.evaluation_failures
                        .get_or_create(&tenant)
                        .inc_by(out.failures);
                }
                if let Some(n) = &shared.notifier {
                    n.send(out.notifications);
                }
                for w in &shared.writers {
                    w.push(&out.samples);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, group = %group.key.group, "A rule group evaluation failed.")
            }
        }
        if group.templates.iter().any(Option::is_some) {
            shared.dirty.store(true, Ordering::Release);
        }
        let now = now_ms();
        next = ts + interval;
        if now >= next {
            let k = (now - ts) / interval;
            if k > 1 {
                m.iterations_missed
                    .get_or_create(&tenant)
                    .inc_by((k - 1) as u64);
            }
            next = ts + k * interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(next_tick(1000, 1000, 0), 2000);
        assert_eq!(next_tick(1001, 1000, 0), 2000);
        assert_eq!(next_tick(1001, 1000, 300), 1300);
        assert_eq!(next_tick(1300, 1000, 300), 2300);
        assert_eq!(next_tick(5, 1000, 300), 300);
    }

    #[test]
    fn alerts_follow_their_rule() {
        let key = GroupKey {
            tenant: "t".into(),
            namespace: "n".into(),
            group: "g".into(),
        };
        let g = |text: &str| {
            CompiledGroup::new(key.clone(), larch_rules::read_group(text).unwrap(), 60_000)
        };
        let old = g(
            "name: g\nrules:\n  - alert: A\n    expr: vector(1)\n  - alert: B\n    expr: vector(2)\n",
        );
        let mut st = GroupStatus::new(&old);
        for (i, name) in [(0, "A"), (1, "B")] {
            super::super::alert::update(
                &mut st.rules[i].active,
                vec![super::super::alert::Instance {
                    labels: vec![("alertname".into(), name.into())],
                    annotations: Default::default(),
                    value: 1.0,
                }],
                0,
                0,
                0,
            );
        }
        // B's query changed, A moved.
        let new = g(
            "name: g\nrules:\n  - alert: B\n    expr: vector(3)\n  - alert: A\n    expr: vector(1)\n",
        );
        let mut fresh = GroupStatus::new(&new);
        let left = carry_over(&old, st, &new, &mut fresh);
        assert!(fresh.rules[0].active.is_empty());
        assert_eq!(fresh.rules[1].active.len(), 1);
        assert_eq!(
            eval::resolve_all(&left, &BTreeMap::new(), 10).len(),
            1,
            "B's alert is resolved"
        );
        // Saved state goes back to the rule with the same name and query.
        let saved = vec![SavedRule {
            alert: "A".into(),
            expr: "vector(1)".into(),
            alerts: fresh.rules[1].active.values().cloned().collect(),
        }];
        let mut restored = GroupStatus::new(&new);
        restore(&new, saved, &mut restored);
        assert_eq!(restored.rules[1].active, fresh.rules[1].active);
    }
}
