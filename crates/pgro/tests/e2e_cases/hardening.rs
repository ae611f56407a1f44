//! Issue "what an outside test found" on the control plane: a snapshot whose data directory has a
//! tablespace outside PGDATA and a hostile pre-existing `analytics` role (superuser, owner of the data,
//! `CONNECTION LIMIT 0`, expired, its own `default_transaction_read_only = off`) is served with the
//! tablespace's copy from the snapshot, the source's tablespace untouched, and the shared analytics login
//! working and read-only (I3, I4, S2).

use crate::e2e_support::instance_support::file_tree;
use crate::e2e_support::*;
use crate::{READY_TIMEOUT, quick_start};

#[tokio::test(flavor = "multi_thread")]
async fn tablespace_and_hostile_analytics_role_are_contained() {
    let Some(w) = world("tablespace_and_hostile_analytics_role_are_contained").await else {
        return;
    };
    let ns = w.env.namespace().await.unwrap();
    let repo = w.repo(ns.name());
    let top = w
        .root
        .path()
        .join("sources")
        .join(format!("ts-{}", ns.name()));
    std::fs::create_dir_all(&top).unwrap();
    let data = w.source_copy(&format!("ts-{}/data", ns.name()));
    let ts = top.join("ts1");
    std::fs::create_dir_all(&ts).unwrap();
    let (uid, gid) = w.env.components().postgres_user();
    std::os::unix::fs::chown(&ts, Some(uid), Some(gid)).unwrap();
    // CREATE TABLESPACE refuses to share psql's implicit transaction with other statements.
    w.pg.with_server(
        &data,
        &format!("CREATE TABLESPACE ts1 LOCATION '{}'", ts.display()),
    )
    .unwrap();
    w.pg.with_server(
        &data,
        "CREATE TABLE ts_items TABLESPACE ts1 AS SELECT * FROM items;
             CREATE ROLE analytics SUPERUSER LOGIN PASSWORD 'source' CONNECTION LIMIT 0 VALID UNTIL '2000-01-01';
             ALTER TABLE items OWNER TO analytics;
             ALTER ROLE analytics SET default_transaction_read_only = off;
             ALTER ROLE analytics IN DATABASE postgres SET default_transaction_read_only = off;",
    )
    .unwrap();
    let before = file_tree(&ts);
    repo.snap(&top, &["--tags", "area:postgres"]);
    w.kopia_secret(&ns, "kopia-credentials", &repo).await;
    create_replica(&ns, &replica_yaml("hard", &quick_start(""))).await;
    let r = wait_replica(w, &ns, "hard", "phase Ready", READY_TIMEOUT, |r, _| {
        phase_is(r, "Ready")
    })
    .await;
    assert!(current(&r).is_some());

    let (user, password) = analytics_credentials(&ns, "hard").await;
    assert_eq!(user, "analytics");
    let (c, _fwd) = connect_service(w, &ns, "hard", &user, &password)
        .await
        .expect("the shared analytics login works despite CONNECTION LIMIT 0 and VALID UNTIL");
    assert_eq!(checksum(&c).await, w.items);
    let n: i64 = c
        .query_one("SELECT count(*) FROM ts_items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, w.items.0, "rows of the tablespace's copy");
    for stmt in [
        "INSERT INTO items (id, name) VALUES (-1, 'x')",
        "DELETE FROM ts_items",
        "CREATE TEMP TABLE t (i int)",
        "SELECT rolpassword FROM pg_authid",
    ] {
        // Its own statement, so the next transaction starts read-write: privileges must refuse.
        c.batch_execute("SET default_transaction_read_only = off")
            .await
            .unwrap();
        assert!(c.batch_execute(stmt).await.is_err(), "analytics ran {stmt}");
    }
    let owner: String = c
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'items'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        owner, "pgro_admin",
        "items still owned by the analytics role"
    );
    drop(c);
    assert!(
        file_tree(&ts) == before,
        "the source's tablespace files changed"
    );
}
