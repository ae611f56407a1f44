use proptest::prelude::*;

use super::*;

fn w(name: &'static str, since: i64) -> Waiter<'static> {
    Waiter {
        namespace: "ns",
        name,
        since: Timestamp::from_second(1_800_000_000 + since).expect("ts"),
    }
}

#[test]
fn free_slot_starts_the_longest_waiting_replica() {
    let queue = [w("a", 0), w("b", 5), w("c", 9)];
    assert_eq!(admit(&queue[0], &queue, 1, 2), Admission::Start);
    assert_eq!(
        admit(&queue[1], &queue, 1, 2),
        Admission::Wait { position: 1 }
    );
    assert_eq!(
        admit(&queue[2], &queue, 1, 2),
        Admission::Wait { position: 2 }
    );
}

#[test]
fn positions_move_up_as_slots_free() {
    let queue = [w("b", 5), w("c", 9)];
    assert_eq!(
        admit(&queue[0], &queue, 2, 2),
        Admission::Wait { position: 1 }
    );
    assert_eq!(admit(&queue[0], &queue, 1, 2), Admission::Start);
    assert_eq!(
        admit(&queue[1], &queue, 1, 2),
        Admission::Wait { position: 1 }
    );
}

#[test]
fn more_restores_in_progress_than_the_limit_admits_nobody() {
    // e.g. the limit was lowered while restores ran
    let queue = [w("a", 0)];
    assert_eq!(
        admit(&queue[0], &queue, 5, 2),
        Admission::Wait { position: 1 }
    );
}

#[test]
fn equal_waiting_times_order_by_namespace_then_name() {
    let queue = [w("b", 0), w("a", 0)];
    assert_eq!(admit(&queue[1], &queue, 0, 1), Admission::Start);
    assert_eq!(
        admit(&queue[0], &queue, 0, 1),
        Admission::Wait { position: 1 }
    );
}

proptest! {
    /// Never more starts than free slots, and positions are 1..=n without gaps.
    #[test]
    fn admissions_never_exceed_the_limit(
        sinces in prop::collection::vec(0i64..20, 1..10), in_progress in 0usize..5, max in 1usize..5,
    ) {
        let names: Vec<String> = (0..sinces.len()).map(|i| format!("r{i}")).collect();
        let queue: Vec<Waiter<'_>> = names
            .iter()
            .zip(&sinces)
            .map(|(n, s)| Waiter { namespace: "ns", name: n, since: Timestamp::from_second(1_800_000_000 + s).expect("ts") })
            .collect();
        let decisions: Vec<Admission> = queue.iter().map(|me| admit(me, &queue, in_progress, max)).collect();
        let starts = decisions.iter().filter(|d| **d == Admission::Start).count();
        prop_assert_eq!(starts, max.saturating_sub(in_progress).min(queue.len()));
        let mut positions: Vec<u32> = decisions
            .iter()
            .filter_map(|d| match d { Admission::Wait { position } => Some(*position), Admission::Start => None })
            .collect();
        positions.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(positions.len()).expect("small")).collect();
        prop_assert_eq!(positions, expected);
    }
}

proptest! {
    /// The whole-queue decision is exactly each replica's own decision: a replica woken by the queue task
    /// decides the same from the same view.
    #[test]
    fn deciding_the_whole_queue_equals_deciding_each(
        sinces in proptest::collection::vec(0i64..50, 0..40),
        in_progress in 0usize..6,
        max in 0usize..6,
    ) {
        let names: Vec<String> = (0..sinces.len()).map(|i| format!("r{i:02}")).collect();
        let waiting: Vec<Waiter<'_>> = names
            .iter()
            .zip(&sinces)
            .map(|(n, s)| Waiter {
                namespace: "ns",
                name: n,
                since: Timestamp::from_second(1_800_000_000 + s).expect("ts"),
            })
            .collect();
        let all = admit_all(&waiting, in_progress, max);
        for (i, w) in waiting.iter().enumerate() {
            prop_assert_eq!(all[i], admit(w, &waiting, in_progress, max));
        }
        // Positions are an exact ranking: 1..=n without gaps or duplicates.
        let mut positions: Vec<u32> = all
            .iter()
            .filter_map(|a| match a {
                Admission::Wait { position } => Some(*position),
                Admission::Start => None,
            })
            .collect();
        positions.sort_unstable();
        prop_assert!(positions.iter().enumerate().all(|(i, p)| *p == u32::try_from(i + 1).unwrap_or(0)));
    }
}
