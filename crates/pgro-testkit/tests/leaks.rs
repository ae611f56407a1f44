//! Nothing the harness starts outlives the test binary: neither processes (control plane, namespace
//! holders, containers and their children) nor network namespaces, whether the binary exits normally
//! (static destructors never run) or is SIGKILLed.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;

const READY: &str = "LEAK-PROBE-READY";

/// Run by the test below in a child process: starts the environment and a pod, reports, then either
/// returns (normal exit) or waits to be killed.
#[tokio::test]
#[ignore = "helper: run as a child process by the leak tests"]
async fn leak_probe_child() {
    let env = pgro_testkit::env().await.expect("environment");
    let ns = env.namespace().await.expect("namespace");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "main", "image": "debian:bookworm",
            "command": ["sh", "-c", "sleep 600 & sleep 600"]}]}
    }))
    .expect("pod");
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    pgro_testkit::eventually("probe running", Duration::from_secs(60), || async {
        let pod = pods.get("probe").await?;
        Ok((pod.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(()))
    })
    .await
    .expect("running");
    println!("{READY}");
    if std::env::var("LEAK_PROBE_MODE").as_deref() == Ok("kill") {
        tokio::time::sleep(Duration::from_secs(600)).await;
    } else {
        // Return (and let the binary exit) once the parent has looked at what runs: it closes stdin.
        let _ =
            tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
    }
}

fn net_namespace(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|p| p.display().to_string())
}

fn all_net_namespaces() -> BTreeSet<String> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(net_namespace)
                .collect()
        })
        .unwrap_or_default()
}

fn run_probe(mode: &str) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "leak_probe_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("LEAK_PROBE_MODE", mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child test binary");
    let child_pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains(READY));
    assert!(ready, "the child never became ready");
    // Keep draining its output so it can finish printing its results.
    let drain = std::thread::spawn(move || lines.for_each(drop));
    let owned = pgro_testkit::processes_owned_by(child_pid);
    assert!(
        owned.len() >= 5,
        "expected control plane, holders and containers, found {owned:?}"
    );
    let host_ns = net_namespace(std::process::id());
    let namespaces: BTreeSet<String> = owned
        .iter()
        .filter_map(|pid| net_namespace(*pid))
        .filter(|ns| Some(ns) != host_ns.as_ref())
        .collect();
    assert!(
        namespaces.len() >= 2,
        "expected the node and pod namespaces, found {namespaces:?}"
    );

    // Closing stdin lets the "exit" child return.
    drop(child.stdin.take());
    if mode == "kill" {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child_pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the child");
    }
    let status = child.wait().expect("wait");
    let _ = drain.join();
    if mode == "exit" {
        assert!(status.success(), "child test failed: {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = pgro_testkit::processes_owned_by(child_pid);
        let alive: Vec<String> = all_net_namespaces()
            .intersection(&namespaces)
            .cloned()
            .collect();
        if left.is_empty() && alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{mode}: processes {left:?} / namespaces {alive:?} outlived the harness"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let named = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(
        !String::from_utf8_lossy(&named.stdout).contains("pgro"),
        "the harness never creates named network namespaces"
    );
}

fn available() -> bool {
    let components = pgro_testkit::Components::load();
    let check = pgro_testkit::check_prerequisites()
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            components
                .path("PGRO_ETCD")
                .map(drop)
                .map_err(anyhow::Error::from)
        })
        .and_then(|()| {
            components
                .path("PGRO_KUBE_APISERVER")
                .map(drop)
                .map_err(anyhow::Error::from)
        });
    pgro_testkit::skip_unless_ci(check, "no_process_or_namespace_outlives_the_test_binary")
        .is_some()
}

#[test]
fn no_process_or_namespace_outlives_a_test_binary_that_exits_normally() {
    if available() {
        run_probe("exit");
    }
}

#[test]
fn no_process_or_namespace_outlives_a_sigkilled_test_binary() {
    if available() {
        run_probe("kill");
    }
}
