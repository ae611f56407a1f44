//! What the harness watches: replicas and restores as they change, queue moves, and the queue-position check.

use super::*;

// ---------------------------------------------------------------------------------------------------------
// What the harness's own watches see.

#[derive(Debug, Clone)]
pub(crate) struct ReplicaView {
    pub(crate) waiting_since: Option<jiff::Timestamp>,
    pub(crate) position: u32,
    pub(crate) phase: String,
}

/// A slot that freed while replicas waited, and what followed.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub(crate) freed: f64,
    /// When the next restore was created (watch ADDED received).
    pub(crate) admitted: Option<f64>,
    /// When every waiting replica's position was exact again (after the admission).
    pub(crate) settled: Option<f64>,
}

#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub(crate) restores: HashMap<(String, String), bool>,
    pub(crate) replicas: HashMap<(String, String), ReplicaView>,
    pub(crate) restores_synced: bool,
    pub(crate) replicas_synced: bool,
    pub(crate) moves: Vec<Move>,
    /// Indices into `moves` of frees not yet matched to a created restore.
    pub(crate) unmatched: VecDeque<usize>,
    pub(crate) restores_created: usize,
    pub(crate) idle_slot_seconds: f64,
    pub(crate) idle_since_formed: f64,
    pub(crate) last_t: Option<f64>,
    pub(crate) max_concurrent: usize,
    pub(crate) formed_at: Option<f64>,
    pub(crate) over_limit_seconds: f64,
}

impl Watched {
    pub(crate) fn in_progress(&self) -> usize {
        self.restores.values().filter(|p| **p).count()
    }

    pub(crate) fn waiting(&self) -> usize {
        self.replicas
            .values()
            .filter(|r| r.waiting_since.is_some())
            .count()
    }

    /// Integrates free slots while replicas wait, up to `t`.
    pub(crate) fn advance(&mut self, t: f64) {
        if let Some(last) = self.last_t {
            let dt = (t - last).max(0.0);
            let in_progress = self.in_progress();
            if self.waiting() > 0 {
                let free = self.max_concurrent.saturating_sub(in_progress) as f64;
                self.idle_slot_seconds += free * dt;
                if self.formed_at.is_some() {
                    self.idle_since_formed += free * dt;
                }
            }
            if in_progress > self.max_concurrent {
                self.over_limit_seconds += dt;
            }
        }
        self.last_t = Some(t);
    }

    pub(crate) fn positions_exact(&self) -> bool {
        let rows: Vec<_> = self
            .replicas
            .iter()
            .map(|((ns, n), v)| (ns.as_str(), n.as_str(), v.waiting_since, v.position))
            .collect();
        check_positions(&rows).exact()
    }

    pub(crate) fn settle(&mut self, t: f64) {
        let open: Vec<usize> = self
            .moves
            .iter()
            .enumerate()
            .filter(|(_, m)| m.admitted.is_some() && m.settled.is_none())
            .map(|(i, _)| i)
            .collect();
        if !open.is_empty() && self.positions_exact() {
            for i in open {
                self.moves[i].settled = Some(t);
            }
        }
    }

    pub(crate) fn restore_event(
        &mut self,
        key: (String, String),
        in_progress: Option<bool>,
        t: f64,
    ) {
        self.advance(t);
        let before = self.restores.get(&key).copied();
        match in_progress {
            Some(now_in_progress) => {
                self.restores.insert(key, now_in_progress);
                if self.restores_synced && before.is_none() {
                    self.restores_created += 1;
                    if let Some(i) = self.unmatched.pop_front() {
                        self.moves[i].admitted = Some(t);
                    }
                }
                if before == Some(true) && !now_in_progress {
                    self.freed(t);
                }
            }
            None => {
                self.restores.remove(&key);
                if before == Some(true) {
                    self.freed(t);
                }
            }
        }
        self.settle(t);
    }

    pub(crate) fn freed(&mut self, t: f64) {
        if self.waiting() > 0 {
            self.moves.push(Move {
                freed: t,
                admitted: None,
                settled: None,
            });
            self.unmatched.push_back(self.moves.len() - 1);
        }
    }

    pub(crate) fn replica_event(
        &mut self,
        key: (String, String),
        view: Option<ReplicaView>,
        t: f64,
    ) {
        self.advance(t);
        match view {
            Some(v) => {
                self.replicas.insert(key, v);
            }
            None => {
                self.replicas.remove(&key);
            }
        }
        self.settle(t);
    }
}

pub(crate) fn restore_in_progress(r: &PostgresPhysicalRestore) -> bool {
    r.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .is_none_or(pgro_api::RestorePhase::is_in_progress)
}

pub(crate) fn replica_view(r: &PostgresPhysicalReplica) -> ReplicaView {
    let status = r.status.clone().unwrap_or_default();
    ReplicaView {
        waiting_since: status.waiting_since.map(|t| t.0),
        position: status.queue_position,
        phase: status
            .phase
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
    }
}

pub(crate) fn key_of<K: kube::Resource>(o: &K) -> (String, String) {
    (o.namespace().unwrap_or_default(), o.name_any())
}

pub(crate) fn spawn_watches(client: &Client, state: Arc<Mutex<Watched>>) {
    let restores: Api<PostgresPhysicalRestore> = Api::all(client.clone());
    let s = state.clone();
    tokio::spawn(async move {
        let mut stream = watcher(restores, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let t = now();
            let mut w = s.lock().unwrap();
            match event {
                Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r)) => {
                    w.restore_event(key_of(&r), Some(restore_in_progress(&r)), t);
                }
                Ok(watcher::Event::Delete(r)) => w.restore_event(key_of(&r), None, t),
                Ok(watcher::Event::InitDone) => w.restores_synced = true,
                Ok(watcher::Event::Init) | Err(_) => {}
            }
        }
    });
    let replicas: Api<PostgresPhysicalReplica> = Api::all(client.clone());
    tokio::spawn(async move {
        let mut stream = watcher(replicas, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let t = now();
            let mut w = state.lock().unwrap();
            match event {
                Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r)) => {
                    w.replica_event(key_of(&r), Some(replica_view(&r)), t);
                }
                Ok(watcher::Event::Delete(r)) => w.replica_event(key_of(&r), None, t),
                Ok(watcher::Event::InitDone) => w.replicas_synced = true,
                Ok(watcher::Event::Init) | Err(_) => {}
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------------------
// Queue positions.

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PositionCheck {
    pub(crate) waiting: usize,
    /// Waiting replicas whose position is not their rank.
    pub(crate) wrong: usize,
    /// Positions held by more than one waiting replica (each extra holder counts).
    pub(crate) duplicates: usize,
    /// Ranks 1..k that no waiting replica holds.
    pub(crate) missing: usize,
    /// Neighbours in admission order whose positions decrease.
    pub(crate) inversions: usize,
    /// Waiting replicas with position 0.
    pub(crate) zero: usize,
    /// Replicas not waiting that still show a position.
    pub(crate) stale: usize,
}

impl PositionCheck {
    pub(crate) fn exact(&self) -> bool {
        self.wrong == 0 && self.stale == 0
    }
}

pub(crate) fn check_positions(
    rows: &[(&str, &str, Option<jiff::Timestamp>, u32)],
) -> PositionCheck {
    let mut waiting: Vec<_> = rows
        .iter()
        .filter_map(|(ns, n, since, p)| since.map(|s| (s, *ns, *n, *p)))
        .collect();
    waiting.sort();
    let k = waiting.len();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut check = PositionCheck {
        waiting: k,
        stale: rows
            .iter()
            .filter(|(_, _, since, p)| since.is_none() && *p > 0)
            .count(),
        ..PositionCheck::default()
    };
    for (i, (_, _, _, p)) in waiting.iter().enumerate() {
        if usize::try_from(*p).ok() != Some(i + 1) {
            check.wrong += 1;
        }
        if *p == 0 {
            check.zero += 1;
        }
        *seen.entry(*p).or_default() += 1;
    }
    check.duplicates = seen.values().filter(|c| **c > 1).map(|c| c - 1).sum();
    check.missing = (1..=k)
        .filter(|r| !seen.contains_key(&u32::try_from(*r).unwrap_or(u32::MAX)))
        .count();
    check.inversions = waiting.windows(2).filter(|w| w[0].3 > w[1].3).count();
    check
}

#[test]
fn positions_check_finds_duplicates_gaps_and_inversions() {
    let t = |s: i64| Some(jiff::Timestamp::from_second(s).unwrap());
    let exact = [
        ("a", "r1", t(1), 1),
        ("a", "r2", t(2), 2),
        ("b", "r0", None, 0),
    ];
    assert!(check_positions(&exact).exact());
    let dup = [("a", "r1", t(1), 1), ("a", "r2", t(2), 1)];
    let c = check_positions(&dup);
    assert_eq!((c.duplicates, c.missing, c.wrong), (1, 1, 1));
    let inverted = [("a", "r1", t(1), 2), ("a", "r2", t(2), 1)];
    assert_eq!(check_positions(&inverted).inversions, 1);
    // Ties on waitingSince are broken by namespace, then name.
    let tie = [("b", "r1", t(1), 2), ("a", "r9", t(1), 1)];
    assert!(check_positions(&tie).exact());
    let stale = [("a", "r1", None, 3)];
    assert_eq!(check_positions(&stale).stale, 1);
}
