//! Rollup arithmetic: operations split over hours and merged into one row per hour.

use super::rollup::{Delta, Op, merge, split};
use super::*;

#[test]
fn operations_merge_into_one_row_per_hour() {
    const MIN: i64 = 60_000;
    let rows = merge(&[
        Op::Held {
            from: 0,
            to: 2 * HOUR_MS + 10 * MIN,
        },
        Op::Occupied {
            from: 30 * MIN,
            to: 2 * HOUR_MS + 10 * MIN,
        },
        Op::Use { at: 30 * MIN },
    ]);
    let d = |occupied_ms, held_ms, uses| Delta {
        occupied_ms,
        held_ms,
        uses,
        ..Delta::default()
    };
    assert_eq!(
        rows,
        vec![
            (0, d(30 * MIN, HOUR_MS, 1)),
            (HOUR_MS, d(HOUR_MS, HOUR_MS, 0)),
            (2 * HOUR_MS, d(10 * MIN, 10 * MIN, 0)),
        ]
    );
}

#[test]
fn intervals_split_at_hour_boundaries() {
    let parts = split(Op::Occupied {
        from: HOUR_MS - 600_000,
        to: 3 * HOUR_MS + 60_000,
    });
    let ms: Vec<(i64, i64)> = parts.iter().map(|(h, d)| (*h, d.occupied_ms)).collect();
    assert_eq!(
        ms,
        vec![
            (0, 600_000),
            (HOUR_MS, HOUR_MS),
            (2 * HOUR_MS, HOUR_MS),
            (3 * HOUR_MS, 60_000)
        ]
    );
    assert!(split(Op::Held { from: 5, to: 5 }).is_empty());
}

#[test]
fn a_pickup_counts_one_use_and_its_box_time() {
    use ItemState::*;
    let f = Flow::Pickup;
    assert_eq!(
        item_ops(f, AwaitingDeposit, InBox, 0, None, 10),
        vec![Op::Use { at: 10 }]
    );
    assert!(
        item_ops(f, InBox, Overdue, 0, Some(10), 20).is_empty(),
        "still in the box"
    );
    assert_eq!(
        item_ops(f, Overdue, Retrieved, 0, Some(10), 30),
        vec![
            Op::Occupied { from: 10, to: 30 },
            Op::Held { from: 0, to: 30 }
        ]
    );
    // A drop-off that never arrived held its box but never occupied it.
    assert_eq!(
        item_ops(Flow::Dropoff, Reserved, Expired, 0, None, 30),
        vec![Op::Held { from: 0, to: 30 }]
    );
}

#[test]
fn spread_clips_to_the_range() {
    let mut v = vec![0; 3];
    Hours::spread(&mut v, HOUR_MS, 0, 10 * HOUR_MS, 2);
    assert_eq!(v, vec![2 * HOUR_MS; 3]);
    let mut v = vec![0; 2];
    Hours::spread(&mut v, 0, HOUR_MS / 2, HOUR_MS + 1, 1);
    assert_eq!(v, vec![HOUR_MS / 2, 1]);
}
