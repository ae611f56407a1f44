//! End-to-end tests that restart, kill, reconfigure or duplicate the operator. They have a control plane of
//! their own (this test binary) and run one at a time.

#![allow(clippy::unwrap_used)]

mod e2e_support;
#[path = "e2e_cases/helm_install.rs"]
mod helm_install;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use e2e_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use pgro_api::{PostgresPhysicalReplica, PostgresPhysicalRestore};
use pgro_testkit::TestNamespace;

/// One test at a time: they all reconfigure or kill the one operator.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// A short Lease, so a killed leader is replaced within seconds.
async fn short_lease(client: &Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), OPERATOR_NS);
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "operator", "env": [{"name": "PGRO_LEASE_DURATION", "value": "6s"}]}
    ]}}}});
    deployments
        .patch(
            "pgro-operator",
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .unwrap();
    pgro_testkit::eventually("operator rolled out", Duration::from_secs(120), || async {
        let d = deployments.get("pgro-operator").await?;
        let s = d.status.unwrap_or_default();
        let want = d.spec.and_then(|s| s.replicas).unwrap_or(1);
        Ok((s.updated_replicas == Some(want)
            && s.ready_replicas == Some(want)
            && s.replicas == Some(want))
        .then_some(()))
    })
    .await
    .unwrap();
}

async fn leader(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    leases
        .get_opt("pgro-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// Waits until an operator other than `killed` holds the Lease.
async fn new_leader(client: &Client, killed: &str) -> String {
    pgro_testkit::eventually("a new leader", Duration::from_secs(90), || async {
        Ok(leader(client).await.filter(|l| l != killed))
    })
    .await
    .unwrap()
}

/// SIGKILLs the leading operator process (no chance to clean up or release its Lease), then removes its
/// pod so the Deployment starts a fresh one without the kubelet's crash back-off.
async fn kill_leader(w: &World) -> String {
    let client = w.client();
    let holder = pgro_testkit::eventually("a leader", Duration::from_secs(60), || async {
        Ok(leader(&client).await)
    })
    .await
    .unwrap();
    for pid in w.env.kubelet().container_pids(OPERATOR_NS, &holder) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NS);
    let _ = pods
        .delete(&holder, &DeleteParams::default().grace_period(0))
        .await;
    holder
}

async fn restores(ns: &TestNamespace) -> Vec<PostgresPhysicalRestore> {
    ns.api::<PostgresPhysicalRestore>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

fn spec(filter_area: &str, schedule: &str, extra: &str) -> String {
    format!(
        "kopiaSecretRef: {{name: kopia-credentials}}\nschedule: '{schedule}'\nscheduleJitter: '0'\nsnapshotFilter:\n  tags: {{area: {filter_area}}}\n{extra}"
    )
}

/// Every PVC, Job and Deployment in the namespace belongs to a restore that exists.
async fn assert_no_orphans(ns: &TestNamespace) {
    let names: BTreeSet<String> = restores(ns)
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let owner = |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
        refs.iter()
            .find(|o| o.kind == "PostgresPhysicalRestore")
            .map(|o| o.name.clone())
    };
    for pvc in ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let o = owner(pvc.owner_references());
        assert!(
            o.as_ref().is_some_and(|o| names.contains(o)),
            "orphaned PVC {}",
            pvc.name_any()
        );
    }
    for job in ns
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let o = owner(job.owner_references());
        assert!(
            o.as_ref().is_some_and(|o| names.contains(o)),
            "orphaned Job {}",
            job.name_any()
        );
    }
    for d in ns
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let o = owner(d.owner_references());
        assert!(
            o.as_ref().is_some_and(|o| names.contains(o)),
            "orphaned Deployment {}",
            d.name_any()
        );
    }
}

/// Acceptance 5 (R6): `maxConcurrentRestores: 1` with three replicas: never more than one restore in
/// progress, queue positions 1-based and moving; an operator restart in the middle leaks no slot and
/// over-commits nothing.
#[tokio::test(flavor = "multi_thread")]
async fn concurrency_limit_queues_replicas_in_order_across_an_operator_restart() {
    let _serial = SERIAL.lock().await;
    let Some(w) = world("concurrency_limit_queues_replicas").await else {
        return;
    };
    let client = w.client();
    set_operator_settings(&client, &[("maxConcurrentRestores", "1")]).await;
    short_lease(&client).await;
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);

    // Sample the cluster continuously: restores in progress and queue positions.
    let stop = Arc::new(AtomicBool::new(false));
    let max_in_progress = Arc::new(AtomicUsize::new(0));
    let positions_seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let sampler = {
        let (stop, max, seen) = (
            stop.clone(),
            max_in_progress.clone(),
            positions_seen.clone(),
        );
        let client = w.client();
        let nsname = ns.name().to_owned();
        tokio::spawn(async move {
            let rs: Api<PostgresPhysicalRestore> = Api::namespaced(client.clone(), &nsname);
            let ps: Api<PostgresPhysicalReplica> = Api::namespaced(client, &nsname);
            while !stop.load(Ordering::SeqCst) {
                let n = rs
                    .list(&ListParams::default())
                    .await
                    .map(|l| {
                        l.items
                            .iter()
                            .filter(|r| {
                                matches!(restore_phase(r).as_str(), "Pending" | "Restoring")
                            })
                            .count()
                    })
                    .unwrap_or(0);
                max.fetch_max(n, Ordering::SeqCst);
                if let Ok(l) = ps.list(&ListParams::default()).await {
                    let mut s = seen.lock().unwrap();
                    for p in l.items {
                        let q = p.status.map_or(0, |s| s.queue_position);
                        if q > 0 {
                            s.insert((p.metadata.name.unwrap_or_default(), q));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    for name in ["qa", "qb", "qc"] {
        create_replica(
            &ns,
            &replica_yaml(name, &spec("postgres", "0 */6 * * *", "")),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Two wait while one restores: positions 1 and 2. Which replica restores first is whichever the
    // operator reconciles first (its controllers may start after all three exist), so the test follows
    // the one queued last rather than assuming creation order.
    let replicas = ns.api::<PostgresPhysicalReplica>();
    let last = pgro_testkit::eventually(
        "two replicas queued at 1 and 2",
        Duration::from_secs(60),
        || async {
            let mut queued: Vec<(u32, String)> = replicas
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter_map(|r| {
                    let q = r.status.as_ref()?.queue_position;
                    (q > 0).then(|| (q, r.name_any()))
                })
                .collect();
            queued.sort();
            let positions: Vec<u32> = queued.iter().map(|(q, _)| *q).collect();
            Ok((positions == [1, 2]).then(|| queued[1].1.clone()))
        },
    )
    .await
    .unwrap();
    eprintln!("{last} is queued last");
    // Restart the operator while the first restore runs.
    let killed = kill_leader(w).await;
    eprintln!("killed operator {killed}");
    new_leader(&client, &killed).await;
    // Positions move: the last one reaches 1 once the first finished and the second started.
    wait_replica(
        w,
        &ns,
        &last,
        "the last one moves to 1",
        READY_TIMEOUT,
        |r, _| r.status.as_ref().is_some_and(|s| s.queue_position == 1),
    )
    .await;
    for name in ["qa", "qb", "qc"] {
        wait_replica(w, &ns, name, "Ready", READY_TIMEOUT, |r, _| {
            phase_is(r, "Ready")
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    assert_eq!(
        max_in_progress.load(Ordering::SeqCst),
        1,
        "never more than one restore in progress"
    );
    let seen = positions_seen.lock().unwrap().clone();
    assert!(
        seen.contains(&(last.clone(), 2)) && seen.contains(&(last.clone(), 1)),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(_, q)| *q <= 2),
        "positions are 1-based among two waiters: {seen:?}"
    );
    // No leak: nothing in progress, one restore per replica, no orphans.
    let rs = restores(&ns).await;
    assert_eq!(rs.len(), 3, "one restore per replica");
    assert!(rs.iter().all(|r| restore_phase(r) == "Active"));
    for name in ["qa", "qb", "qc"] {
        let r = ns.api::<PostgresPhysicalReplica>().get(name).await.unwrap();
        let st = r.status.unwrap();
        assert_eq!((st.queue_position, st.waiting_since.is_none()), (0, true));
    }
    assert_no_orphans(&ns).await;
    // The gauges follow the state, not the last admission: the queue drained, so both read 0.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = operator_metrics(w).await;
        let drained = !all.is_empty()
            && all.iter().all(|m| {
                m.lines().any(|l| l == "pgro_restores_in_progress 0")
                    && m.lines().any(|l| l == "pgro_restore_queue_depth 0")
            });
        if drained {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gauges did not return to 0:\n{}",
            all.join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    set_operator_settings(&client, &[]).await;
    ns.delete().await.unwrap();
}

/// Acceptance 8 (R9, O3): SIGKILL the operator at ten distinct points of a refresh and restart it: it
/// converges, there are never two Active restores, nothing is orphaned, and the Service never lacks a ready
/// endpoint while a ready restore exists.
#[tokio::test(flavor = "multi_thread")]
async fn operator_killed_at_every_step_of_a_refresh_converges() {
    let _serial = SERIAL.lock().await;
    let Some(w) = world("operator_killed_at_every_step").await else {
        return;
    };
    let client = w.client();
    short_lease(&client).await;
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(
        &ns,
        &replica_yaml(
            "k",
            &spec("postgres", "* * * * *", "switchoverGracePeriod: 40s"),
        ),
    )
    .await;
    let r = wait_replica(w, &ns, "k", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let old = current(&r).unwrap();

    // Invariants, sampled all along.
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let monitor = {
        let (stop, violations) = (stop.clone(), violations.clone());
        let client = w.client();
        let nsname = ns.name().to_owned();
        tokio::spawn(async move {
            let rs: Api<PostgresPhysicalRestore> = Api::namespaced(client.clone(), &nsname);
            let slices: Api<EndpointSlice> = Api::namespaced(client, &nsname);
            while !stop.load(Ordering::SeqCst) {
                if let Ok(l) = rs.list(&ListParams::default()).await {
                    let active: Vec<String> = l
                        .items
                        .iter()
                        .filter(|r| restore_phase(r) == "Active")
                        .map(ResourceExt::name_any)
                        .collect();
                    if active.len() > 1 {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("two Active restores: {active:?}"));
                    }
                }
                if let Ok(l) = slices
                    .list(&ListParams::default().labels("kubernetes.io/service-name=k"))
                    .await
                {
                    let ready = l
                        .items
                        .iter()
                        .flat_map(|s| s.endpoints.iter())
                        .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false));
                    if !ready {
                        violations
                            .lock()
                            .unwrap()
                            .push("Service k has no ready endpoint".into());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    // A new snapshot starts the refresh at the next minute.
    let src = w.source_copy(ns.name());
    let items = w.change_source(&src, "UPDATE items SET name = 'refreshed' WHERE id <= 100");
    repo.snap(&src, &["--tags", "area:postgres"]);
    let new_restore =
        |rs: &[PostgresPhysicalRestore]| rs.iter().find(|x| x.name_any() != old).cloned();
    type Point = (
        &'static str,
        fn(
            &PostgresPhysicalReplica,
            Option<&PostgresPhysicalRestore>,
            &[PostgresPhysicalRestore],
        ) -> bool,
    );
    let points: [Point; 10] = [
        ("new restore created", |_, n, _| n.is_some()),
        ("restore Job running", |_, n, _| {
            n.and_then(|n| n.status.as_ref()?.restore_job.as_ref()?.phase.clone())
                .is_some_and(|p| p == "Running" || p == "Succeeded")
        }),
        ("snapshot restored", |_, n, _| {
            n.and_then(|n| n.status.as_ref()?.restored_at.clone())
                .is_some()
        }),
        ("PostgreSQL Deployment created", |_, n, _| {
            n.and_then(|n| n.status.as_ref()?.deployment.clone())
                .is_some()
        }),
        ("new restore ready", |_, n, _| {
            n.is_some_and(|n| matches!(restore_phase(n).as_str(), "Ready" | "Switching" | "Active"))
        }),
        ("new restore switching or active", |_, n, _| {
            n.is_some_and(|n| matches!(restore_phase(n).as_str(), "Switching" | "Active"))
        }),
        ("new restore active", |_, n, _| {
            n.is_some_and(|n| restore_phase(n) == "Active")
        }),
        ("replica status switched", |r, n, _| {
            n.is_some_and(|n| current(r).as_deref() == Some(n.name_any().as_str()))
        }),
        ("grace period running", |r, _, _| {
            r.status
                .as_ref()
                .is_some_and(|s| s.previous_restore.is_some())
        }),
        ("old restore deleted", |r, _, rs| {
            r.status
                .as_ref()
                .is_some_and(|s| s.previous_restore.is_none())
                && rs.len() == 1
        }),
    ];
    let mut killed_at = Vec::new();
    for (name, reached) in points {
        let r = wait_replica(w, &ns, "k", name, READY_TIMEOUT, |r, rs| {
            reached(r, new_restore(rs).as_ref(), rs)
        })
        .await;
        let who = kill_leader(w).await;
        eprintln!(
            "killed {who} at: {name} (phase {:?})",
            r.status.as_ref().and_then(|s| s.phase.clone())
        );
        killed_at.push(name);
        // The next point is looked for once another operator holds the Lease, so each kill hits a live
        // leader (the killed one's Lease must expire first).
        new_leader(&client, &who).await;
    }
    let r = wait_replica(w, &ns, "k", "converged", READY_TIMEOUT, |r, rs| {
        phase_is(r, "Ready")
            && r.status
                .as_ref()
                .is_some_and(|s| s.previous_restore.is_none())
            && rs.len() == 1
            && rs.iter().all(|x| restore_phase(x) == "Active")
    })
    .await;
    assert_ne!(current(&r).as_deref(), Some(old.as_str()));
    stop.store(true, Ordering::SeqCst);
    monitor.await.unwrap();
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "invariants broken: {violations:?}");
    assert_eq!(killed_at.len(), 10);
    assert_no_orphans(&ns).await;
    let (user, password) = analytics_credentials(&ns, "k").await;
    let (c, _fwd) = connect_service(w, &ns, "k", &user, &password)
        .await
        .unwrap();
    assert_eq!(checksum(&c).await, items, "serves the refreshed data");
    ns.delete().await.unwrap();
}

/// Acceptance 9 (O3): with two operator replicas only the Lease holder reconciles; killing it hands over.
#[tokio::test(flavor = "multi_thread")]
async fn two_operators_only_the_leader_reconciles_and_killing_it_hands_over() {
    let _serial = SERIAL.lock().await;
    let Some(w) = world("two_operators").await else {
        return;
    };
    let client = w.client();
    short_lease(&client).await;
    scale_operator(&client, 2).await;
    wait_operator_ready(&client, 2).await;
    let first_leader = pgro_testkit::eventually("a leader", Duration::from_secs(60), || async {
        Ok(leader(&client).await)
    })
    .await
    .unwrap();
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    create_replica(
        &ns,
        &replica_yaml("l1", &spec("postgres", "0 */6 * * *", "")),
    )
    .await;
    wait_replica(w, &ns, "l1", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let pods = operator_pods(&client).await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let log = w
            .env
            .kubelet()
            .logs(OPERATOR_NS, &p.name_any(), None)
            .unwrap_or_default();
        let reconciled = log.contains("restore created");
        if p.name_any() == first_leader {
            assert!(reconciled, "the leader created the restore:\n{log}");
        } else {
            assert!(!reconciled, "the standby reconciled:\n{log}");
            assert!(log.contains("standing by"), "the standby waits:\n{log}");
        }
    }

    kill_leader(w).await;
    let second_leader =
        pgro_testkit::eventually("a new leader", Duration::from_secs(60), || async {
            Ok(leader(&client).await.filter(|l| *l != first_leader))
        })
        .await
        .unwrap();
    create_replica(
        &ns,
        &replica_yaml("l2", &spec("postgres", "0 */6 * * *", "")),
    )
    .await;
    wait_replica(
        w,
        &ns,
        "l2",
        "Ready under the new leader",
        READY_TIMEOUT,
        |r, _| phase_is(r, "Ready"),
    )
    .await;
    let log = w
        .env
        .kubelet()
        .logs(OPERATOR_NS, &second_leader, None)
        .unwrap_or_default();
    assert!(
        log.contains("leader election won") && log.contains("restore created"),
        "{log}"
    );
    scale_operator(&client, 1).await;
    ns.delete().await.unwrap();
}

/// The last "settings reloaded" line of each operator pod's log.
fn last_reload_lines(w: &World, pods: &[Pod]) -> Vec<Option<String>> {
    pods.iter()
        .map(|p| {
            w.env
                .kubelet()
                .logs(OPERATOR_NS, &p.name_any(), None)
                .unwrap_or_default()
                .lines()
                .rev()
                .find(|l| l.contains("settings reloaded"))
                .map(str::to_owned)
        })
        .collect()
}

/// O3: the log format and level follow the settings ConfigMap while the operator runs (deploy/operator.yaml
/// starts it with JSON at `info`), and removing the keys restores the start values.
#[tokio::test(flavor = "multi_thread")]
async fn log_format_and_level_follow_the_settings_configmap() {
    let _serial = SERIAL.lock().await;
    let Some(w) = world("log_settings").await else {
        return;
    };
    let client = w.client();
    wait_operator_ready(&client, 1).await;
    let pods = operator_pods(&client).await;
    let set = |format: serde_json::Value, level: serde_json::Value| {
        let client = client.clone();
        async move {
            patch_operator_settings(
                &client,
                serde_json::json!({"logFormat": format, "logLevel": level}),
            )
            .await;
        }
    };

    set("text".into(), "pgro=debug,info".into()).await;
    pgro_testkit::eventually("text log lines", Duration::from_secs(30), || async {
        let lines = last_reload_lines(w, &pods);
        Ok(lines
            .iter()
            .all(|l| {
                l.as_deref()
                    .is_some_and(|l| !l.trim_start().starts_with('{') && l.contains("INFO"))
            })
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", operator_logs(w.env, &pods)));

    set(serde_json::Value::Null, serde_json::Value::Null).await;
    pgro_testkit::eventually("JSON log lines again", Duration::from_secs(30), || async {
        let lines = last_reload_lines(w, &pods);
        Ok(lines
            .iter()
            .all(|l| {
                l.as_deref()
                    .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .is_some_and(|v| v["level"] == "INFO")
            })
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", operator_logs(w.env, &pods)));

    // A level directive the filter refuses is reported and changes nothing.
    set("json".into(), "pgro=loud".into()).await;
    pgro_testkit::eventually("refusal logged", Duration::from_secs(30), || async {
        Ok(pods
            .iter()
            .all(|p| {
                w.env
                    .kubelet()
                    .logs(OPERATOR_NS, &p.name_any(), None)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.contains("settings ConfigMap refused") && l.contains("logLevel"))
            })
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", operator_logs(w.env, &pods)));
    set(serde_json::Value::Null, serde_json::Value::Null).await;
}

/// Issue 16: `status.history` keeps exactly `historyLimit` records, newest first, across an operator
/// restart, and the per-replica gauges come back from the stored status on the new operator.
#[tokio::test(flavor = "multi_thread")]
async fn history_keeps_exactly_its_limit_across_an_operator_restart() {
    let Some(w) = world("history_keeps_exactly_its_limit").await else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let client = w.client();
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    let gate = |sql: &str| serde_json::json!({"checks": [{"name": "gate", "database": "postgres", "sql": sql}]});
    let extra = "historyLimit: 2\nverification:\n  checks:\n  - {name: gate, database: postgres, sql: 'SELECT count(*) > 0 FROM items'}";
    create_replica(
        &ns,
        &replica_yaml("h", &spec("postgres", "* * * * *", extra)),
    )
    .await;
    let api = ns.api::<PostgresPhysicalReplica>();
    let patch = |body: serde_json::Value| {
        let api = api.clone();
        async move {
            api.patch(
                "h",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"spec": body})),
            )
            .await
            .unwrap();
        }
    };
    let r = wait_replica(w, &ns, "h", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let first = current(&r).unwrap();

    // Two failed refreshes: three restores ended, two kept.
    patch(serde_json::json!({"verification": gate("SELECT false")})).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    wait_replica(
        w,
        &ns,
        "h",
        "two failures",
        Duration::from_secs(420),
        |r, _| {
            r.status
                .as_ref()
                .is_some_and(|s| s.consecutive_restore_failures >= 2)
        },
    )
    .await;
    patch(serde_json::json!({"schedule": "0 0 1 1 *"})).await;
    // Settled: nothing in flight, and every ended restore recorded.
    let r = wait_replica(w, &ns, "h", "settled", READY_TIMEOUT, |r, rs| {
        rs.iter()
            .all(|x| !matches!(restore_phase(x).as_str(), "Pending" | "Restoring"))
            && r.status.as_ref().is_some_and(|s| s.history.len() == 2)
    })
    .await;
    let before = r.status.clone().unwrap();
    assert!(
        before.history.iter().all(|h| h.outcome == "Failed"),
        "{:?}",
        before.history
    );
    assert!(
        before.history.iter().all(|h| h.restore != first),
        "the oldest record went"
    );
    assert!(
        before.history[0].failed_at.as_ref().unwrap().0
            >= before.history[1].failed_at.as_ref().unwrap().0
    );

    let killed = kill_leader(w).await;
    new_leader(&client, &killed).await;
    wait_operator_ready(&client, 1).await;
    let r = api.get("h").await.unwrap();
    let after = r.status.clone().unwrap();
    assert_eq!(
        after.history, before.history,
        "the history outlives the operator"
    );
    let n = ns.name();
    let g = |name: &str| format!("{name}{{namespace=\"{n}\",replica=\"h\"}}");
    wait_metrics(
        w,
        &[
            (
                g("pgro_replica_consecutive_restore_failures"),
                f64::from(after.consecutive_restore_failures),
            ),
            (
                format!("pgro_verification_check_passed{{namespace=\"{n}\",replica=\"h\",check=\"gate\"}}"),
                0.0,
            ),
            (
                g("pgro_replica_last_verification_success_timestamp_seconds"),
                epoch(after.last_verified_at.as_ref().unwrap()),
            ),
            (
                g("pgro_replica_data_timestamp_seconds"),
                epoch(after.data_time.as_ref().unwrap()),
            ),
        ],
    )
    .await;

    // A refresh that passes after the restart: recorded first, and still two records.
    if after.consecutive_restore_failures >= 3 {
        api.patch_status(
            "h",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": {"consecutiveRestoreFailures": 0}})),
        )
        .await
        .unwrap();
    }
    patch(serde_json::json!({"schedule": "* * * * *", "verification": gate("SELECT true")})).await;
    let r = wait_replica(w, &ns, "h", "a new switchover", READY_TIMEOUT, |r, _| {
        r.status.as_ref().is_some_and(|s| {
            s.history
                .first()
                .is_some_and(|h| h.outcome == "Active" && h.restore != first)
        })
    })
    .await;
    let st = r.status.unwrap();
    assert_eq!(st.history.len(), 2, "{:?}", st.history);
    assert_eq!(st.history[1], before.history[0]);
    assert_eq!(st.consecutive_restore_failures, 0);
    patch(serde_json::json!({"schedule": "0 0 1 1 *"})).await;
    ns.delete().await.unwrap();
}
