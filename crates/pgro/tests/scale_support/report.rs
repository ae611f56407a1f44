//! The markdown report.

use super::*;

// ---------------------------------------------------------------------------------------------------------
// The report.

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub(crate) fn by_what(requests: &[&Request]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in requests {
        *counts.entry(r.what.as_str()).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().map(|(k, c)| (k.to_owned(), c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    knobs: &Knobs,
    t0: f64,
    t_end: f64,
    created_at: Option<f64>,
    samples: &[Sample],
    audit: &AuditTail,
    watched: &Watched,
    apiserver_before: &BTreeMap<String, f64>,
    apiserver_after: &BTreeMap<String, f64>,
) -> String {
    let mut out = String::new();
    let span = t_end - t0;
    let formed = watched.formed_at;
    // Moves: a slot freed while replicas waited; busy from the free until positions are exact again
    // (or the next free, or 30 s).
    let moves = &watched.moves;
    let mut busy: Vec<(f64, f64)> = moves
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let cap = moves
                .get(i + 1)
                .map_or(m.freed + 30.0, |n| n.freed.min(m.freed + 30.0));
            (
                m.freed,
                m.settled.unwrap_or(cap).max(m.admitted.unwrap_or(m.freed)) + 0.5,
            )
        })
        .collect();
    busy.sort_by(|a, b| a.0.total_cmp(&b.0));
    let in_busy = |t: f64| busy.iter().any(|(a, b)| t >= *a && t < *b);
    let requests: Vec<&Request> = audit
        .requests
        .iter()
        .filter(|r| r.t >= t0 && r.t <= t_end)
        .collect();
    // Steady state: after the queue formed, outside every move, in whole seconds.
    let (steady_seconds, steady_requests): (f64, Vec<&Request>) = match formed {
        Some(f) => {
            let mut secs = 0.0;
            let mut t = f;
            while t + 1.0 <= t_end {
                if !in_busy(t) && !in_busy(t + 0.999) {
                    secs += 1.0;
                }
                t += 1.0;
            }
            let reqs = requests
                .iter()
                .filter(|r| {
                    r.t >= f && {
                        let s = f + ((r.t - f).floor());
                        !in_busy(s) && !in_busy(s + 0.999)
                    }
                })
                .copied()
                .collect();
            (secs, reqs)
        }
        None => (0.0, Vec::new()),
    };
    let after_formed: Vec<&Request> = formed.map_or_else(Vec::new, |f| {
        requests.iter().filter(|r| r.t >= f).copied().collect()
    });
    let move_requests: Vec<&Request> = requests
        .iter()
        .filter(|r| formed.is_some_and(|f| r.t >= f) && in_busy(r.t))
        .copied()
        .collect();
    let moves_after_formed = moves
        .iter()
        .filter(|m| formed.is_some_and(|f| m.freed >= f))
        .count();

    let mut delays: Vec<f64> = moves
        .iter()
        .filter_map(|m| m.admitted.map(|a| a - m.freed))
        .collect();
    delays.sort_by(f64::total_cmp);
    let mut settles: Vec<f64> = moves
        .iter()
        .filter_map(|m| m.settled.map(|s| s - m.freed))
        .collect();
    settles.sort_by(f64::total_cmp);
    let unsettled = moves
        .iter()
        .filter(|m| m.admitted.is_some() && m.settled.is_none())
        .count();
    let unadmitted = moves.iter().filter(|m| m.admitted.is_none()).count();

    let rss_max = samples.iter().filter_map(|s| s.rss_kib).max().unwrap_or(0);
    let rss_last = samples.iter().rev().find_map(|s| s.rss_kib).unwrap_or(0);
    let cpu = {
        let c: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| s.cpu_seconds.map(|c| (s.t, c)))
            .collect();
        match (c.first(), c.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
            _ => f64::NAN,
        }
    };
    let rate = |f: &dyn Fn(&Sample) -> Option<f64>, from: f64| {
        let v: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.t >= from)
            .filter_map(|s| f(s).map(|x| (s.t, x)))
            .collect();
        match (v.first(), v.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
            _ => f64::NAN,
        }
    };
    let steady_reconciles = {
        // Sample intervals wholly outside moves, after the queue formed.
        let mut secs = 0.0;
        let (mut rep, mut res) = (0.0, 0.0);
        for w in samples.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if formed.is_some_and(|f| a.t >= f)
                && !busy.iter().any(|(x, y)| *x < b.t && *y > a.t)
                && let (Some(r0), Some(r1), Some(s0), Some(s1)) = (
                    a.reconciles_replica,
                    b.reconciles_replica,
                    a.reconciles_restore,
                    b.reconciles_restore,
                )
            {
                secs += b.t - a.t;
                rep += r1 - r0;
                res += s1 - s0;
            }
        }
        (secs, rep / secs, res / secs)
    };
    let listed: Vec<&Sample> = samples.iter().filter(|s| s.positions.is_some()).collect();
    let is_exact = |s: &&Sample| s.positions.as_ref().is_some_and(PositionCheck::exact);
    let exact = listed.iter().filter(|s| is_exact(s)).count();
    let exact_formed: Vec<&Sample> = listed
        .iter()
        .filter(|s| formed.is_some_and(|f| s.t >= f))
        .copied()
        .collect();
    let exact_formed_n = exact_formed.iter().filter(|s| is_exact(s)).count();
    let unlisted = samples.len() - listed.len();
    let load: Vec<f64> = samples.iter().map(|s| s.load1).collect();
    let load_mean = load.iter().sum::<f64>() / load.len().max(1) as f64;
    let load_max = load.iter().copied().fold(0.0, f64::max);
    let last = samples.last().cloned().unwrap_or_default();

    let _ = writeln!(
        out,
        "### N = {} replicas, maxConcurrentRestores = {}, restores held {} s\n",
        knobs.replicas, knobs.max_concurrent, knobs.restore_seconds
    );
    let _ = writeln!(
        out,
        "Run of {span:.0} s from the first replica created; replicas created in {}; queue formed at {}; {} restores created, {} replicas Ready at the end, {} waiting; {} samples every {} s; load average (1 min) mean {load_mean:.1}, max {load_max:.1}.\n",
        created_at.map_or("-".into(), |c| format!("{:.0} s", c - t0)),
        formed.map_or("never".into(), |f| format!("{:.0} s", f - t0)),
        watched.restores_created,
        last.ready,
        last.waiting,
        samples.len(),
        knobs.sample
    );
    let _ = writeln!(out, "| measure | value |\n|---|---|");
    let row = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "| {k} | {v} |");
    };
    row(
        &mut out,
        "operator API requests/s, steady state (queue formed, no slot freeing)",
        if steady_seconds > 0.0 {
            format!(
                "**{:.2}** ({} requests in {steady_seconds:.0} s)",
                steady_requests.len() as f64 / steady_seconds,
                steady_requests.len()
            )
        } else {
            "no steady window".into()
        },
    );
    row(
        &mut out,
        "operator API requests per queue move (slot free → positions exact again, incl. the new restore's creation)",
        if moves_after_formed > 0 {
            format!(
                "{:.0} ({} requests, {} moves)",
                move_requests.len() as f64 / moves_after_formed as f64,
                move_requests.len(),
                moves_after_formed
            )
        } else {
            "-".into()
        },
    );
    row(
        &mut out,
        "operator API requests/s after the queue formed (all)",
        formed.map_or("-".into(), |f| {
            format!("{:.2}", after_formed.len() as f64 / (t_end - f).max(1.0))
        }),
    );
    row(
        &mut out,
        "operator API requests/s over the whole run (incl. creating the replicas)",
        format!(
            "{:.2} ({} requests)",
            requests.len() as f64 / span,
            requests.len()
        ),
    );
    row(
        &mut out,
        "operator requests answered with an error, by code",
        format!("{:?}", audit.errors),
    );
    row(
        &mut out,
        "conflicts (409) / throttled (429)",
        format!(
            "{} ({:.2}/s) / {}",
            audit.conflicts.len(),
            audit.conflicts.len() as f64 / span,
            audit.throttled
        ),
    );
    row(
        &mut out,
        "reconciles/s whole run (replica / restore)",
        format!(
            "{:.2} / {:.2}",
            rate(&|s| s.reconciles_replica, t0),
            rate(&|s| s.reconciles_restore, t0)
        ),
    );
    row(
        &mut out,
        "reconciles/s steady state (replica / restore)",
        if steady_reconciles.0 > 0.0 {
            format!(
                "{:.2} / {:.2} (over {:.0} s)",
                steady_reconciles.1, steady_reconciles.2, steady_reconciles.0
            )
        } else {
            "-".into()
        },
    );
    row(
        &mut out,
        "operator RSS max / at the end",
        format!(
            "**{:.1} MiB** / {:.1} MiB",
            rss_max as f64 / 1024.0,
            rss_last as f64 / 1024.0
        ),
    );
    row(&mut out, "operator CPU (cores, mean)", format!("{cpu:.2}"));
    row(
        &mut out,
        "admission delay (slot free → next restore created) p50 / p95 / max",
        if delays.is_empty() {
            "no slot freed while replicas waited".into()
        } else {
            format!(
                "{:.2} s / **{:.2} s** / {:.2} s ({} admissions{})",
                percentile(&delays, 0.5),
                percentile(&delays, 0.95),
                delays.last().copied().unwrap_or(f64::NAN),
                delays.len(),
                if unadmitted > 0 {
                    format!(", {unadmitted} frees not followed by a restore by the end")
                } else {
                    String::new()
                }
            )
        },
    );
    row(
        &mut out,
        "queue move settle time (slot free → every position exact) p50 / p95 / max",
        if settles.is_empty() {
            "-".into()
        } else {
            format!(
                "{:.2} s / {:.2} s / {:.2} s{}",
                percentile(&settles, 0.5),
                percentile(&settles, 0.95),
                settles.last().copied().unwrap_or(f64::NAN),
                if unsettled > 0 {
                    format!(" ({unsettled} moves never settled before the next)")
                } else {
                    String::new()
                }
            )
        },
    );
    row(
        &mut out,
        "slot idle time while replicas waited (slot-seconds): whole run / after the queue formed",
        format!(
            "{:.1} / **{:.1}**",
            watched.idle_slot_seconds, watched.idle_since_formed
        ),
    );
    row(
        &mut out,
        "time with more restores in progress than the limit",
        format!("{:.1} s", watched.over_limit_seconds),
    );
    row(
        &mut out,
        "queue positions exact: all samples / after the queue formed",
        format!(
            "{exact}/{} / **{exact_formed_n}/{}**{}",
            listed.len(),
            exact_formed.len(),
            if unlisted > 0 {
                format!(
                    " ({unlisted} samples without a LIST — not due, failed or > 20 s — not counted)"
                )
            } else {
                String::new()
            }
        ),
    );
    row(
        &mut out,
        "operator gauges at the end (queue depth / in progress) vs. observed (waiting / in progress)",
        format!(
            "{} / {} vs. {} / {}",
            last.gauge_queue.map_or("-".into(), |v| v.to_string()),
            last.gauge_in_progress.map_or("-".into(), |v| v.to_string()),
            last.waiting,
            last.in_progress
        ),
    );

    let inexact: Vec<(&Sample, &PositionCheck)> = samples
        .iter()
        .filter_map(|s| s.positions.as_ref().filter(|p| !p.exact()).map(|p| (s, p)))
        .collect();
    let inexact_formed: Vec<_> = inexact
        .iter()
        .filter(|(s, _)| formed.is_some_and(|f| s.t >= f))
        .collect();
    if !inexact.is_empty() {
        let _ = writeln!(
            out,
            "\nInexact queue positions: {} samples, {} of them after the queue formed (first 10 of those shown; the rest were while the queue was forming): t, waiting, wrong, duplicates, missing, inversions, zero, stale (not waiting, position > 0), slots in progress:\n",
            inexact.len(),
            inexact_formed.len()
        );
        for (s, p) in inexact_formed.iter().take(10) {
            let _ = writeln!(
                out,
                "* t={:.0} s: waiting {}, wrong {}, duplicates {}, missing {}, inversions {}, zero {}, stale {}, in progress {}",
                s.t - t0,
                p.waiting,
                p.wrong,
                p.duplicates,
                p.missing,
                p.inversions,
                p.zero,
                p.stale,
                s.in_progress
            );
        }
    }

    let table = |out: &mut String, title: &str, reqs: &[&Request], secs: f64| {
        let _ = writeln!(
            out,
            "\n{title} ({} requests in {secs:.0} s):\n\n| verb resource | requests | per s |\n|---|---|---|",
            reqs.len()
        );
        for (what, n) in by_what(reqs).into_iter().take(15) {
            let _ = writeln!(out, "| {what} | {n} | {:.2} |", n as f64 / secs.max(1.0));
        }
    };
    if steady_seconds > 0.0 {
        table(
            &mut out,
            "Operator requests in the steady state, by verb and resource",
            &steady_requests,
            steady_seconds,
        );
    }
    if moves_after_formed > 0 {
        let _ = writeln!(
            out,
            "\nOperator requests during queue moves, by verb and resource (per move):\n\n| verb resource | requests | per move |\n|---|---|---|"
        );
        for (what, n) in by_what(&move_requests).into_iter().take(15) {
            let _ = writeln!(
                out,
                "| {what} | {n} | {:.1} |",
                n as f64 / moves_after_formed as f64
            );
        }
    }
    table(
        &mut out,
        "Operator requests over the whole run, by verb and resource",
        &requests,
        span,
    );
    let conflicts: Vec<&Request> = audit.conflicts.iter().collect();
    if !conflicts.is_empty() {
        table(
            &mut out,
            "Conflicts (409) by verb and resource",
            &conflicts,
            span,
        );
    }
    let mut deltas: Vec<(String, f64)> = apiserver_after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v - apiserver_before.get(k).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    deltas.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = deltas.iter().map(|(_, d)| d).sum();
    let _ = writeln!(
        out,
        "\nFor comparison, `apiserver_request_total` over the run, every client (operator, kubelet, controller-manager, this harness's watches and per-sample LIST): {total:.0} requests ({:.1}/s); top 10:\n\n| verb resource | requests | per s |\n|---|---|---|",
        total / span
    );
    for (what, d) in deltas.iter().take(10) {
        let _ = writeln!(out, "| {what} | {d:.0} | {:.2} |", d / span);
    }
    out
}
