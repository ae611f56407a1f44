//! The operator under change: a repository password rotated before the Secret follows is a condition
//! (`KopiaSecretValid=False/RepositoryPasswordInvalid`) before any restore is created — the cached open
//! repository must not hide it — nothing is created or counted toward suspension while it lasts, and fixing
//! the Secret resumes at once (R1, R8).

use std::time::Duration;

use kube::ResourceExt;
use pgro_api::PostgresPhysicalRestore;

use crate::READY_TIMEOUT;
use crate::e2e_support::*;

const NEW_PASSWORD: &str = "e2e-rotated-password";

#[tokio::test(flavor = "multi_thread")]
async fn rotated_password_is_a_condition_and_creates_nothing_until_the_secret_follows() {
    let Some(w) = world("rotated_password_is_a_condition").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    repo.snap(&w.template, &["--tags", "area:postgres"]);
    let spec = "kopiaSecretRef: {name: kopia-credentials}\nschedule: '* * * * *'\nscheduleJitter: '0'\nswitchoverGracePeriod: 10s\nsnapshotFilter:\n  tags: {area: postgres}";
    create_replica(&ns, &replica_yaml("rot", spec)).await;
    let r = wait_replica(w, &ns, "rot", "Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    let first = current(&r).unwrap();

    // The password changes in the repository; a new snapshot arrives; the Secret still has the old one.
    repo.run(&[
        "repository",
        "change-password",
        "--new-password",
        NEW_PASSWORD,
    ])
    .unwrap();
    let mut rotated = repo.clone();
    rotated.password = NEW_PASSWORD.to_owned();
    rotated.snap(&w.template, &["--tags", "area:postgres"]);
    let r = wait_replica(
        w,
        &ns,
        "rot",
        "RepositoryPasswordInvalid",
        Duration::from_secs(120),
        |r, _| cond_is(r, "KopiaSecretValid", "False", "RepositoryPasswordInvalid"),
    )
    .await;
    // A scheduled time passes while the Secret is wrong: the due restore waits (the condition says why;
    // `nextScheduledRestore` stays at the due time) and nothing is created or counted.
    let due = r
        .status
        .as_ref()
        .unwrap()
        .next_scheduled_restore
        .clone()
        .unwrap()
        .0;
    let wait = (due.as_second() - jiff::Timestamp::now().as_second()).max(0) as u64 + 20;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let restores: kube::Api<PostgresPhysicalRestore> = ns.api();
    let names: Vec<String> = restores
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(
        names.len() == 1 && names[0] == first,
        "restores created with a wrong password: {names:?}"
    );
    let r = restores_replica(&ns, "rot").await;
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.consecutive_restore_failures, 0);
    assert!(cond_is(
        &r,
        "KopiaSecretValid",
        "False",
        "RepositoryPasswordInvalid"
    ));
    assert_eq!(
        current(&r).as_deref(),
        Some(first.as_str()),
        "the active restore keeps serving"
    );

    // The Secret follows: the next reconcile resumes and switches to the new snapshot.
    w.kopia_secret_with_password(&ns, "kopia-credentials", &repo, NEW_PASSWORD)
        .await;
    let r = wait_replica(
        w,
        &ns,
        "rot",
        "switched to the new snapshot",
        READY_TIMEOUT,
        |r, _| phase_is(r, "Ready") && current(r).is_some_and(|c| c != first),
    )
    .await;
    assert!(cond_is(&r, "KopiaSecretValid", "True", "RepositoryOpened"));
    assert_eq!(r.status.as_ref().unwrap().consecutive_restore_failures, 0);
}

async fn restores_replica(
    ns: &pgro_testkit::TestNamespace,
    name: &str,
) -> pgro_api::PostgresPhysicalReplica {
    ns.api::<pgro_api::PostgresPhysicalReplica>()
        .get(name)
        .await
        .unwrap()
}
