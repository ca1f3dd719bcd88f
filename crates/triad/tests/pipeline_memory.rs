//! A pipeline's memory stays flat whatever its input's size: a million items of 1 KiB each
//! (a GiB in all) pass through two stages to a caller that takes them slowly, and the peak
//! resident memory grows by less than 64 MiB. In a binary of its own, so that no other test's
//! memory is counted.

use std::time::Duration;

use triad::pipeline::{Pipeline, Stage};

const ITEMS: u64 = 1_000_000;
const ITEM_BYTES: usize = 1024;

/// This process's resident memory now and at its peak, in bytes.
fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_million_items_of_a_kibibyte_pass_in_flat_memory() {
    // Warm the allocator and the runtime's pieces once, so that their one-off memory is not
    // counted as growth.
    let warm: Vec<_> = Pipeline::new()
        .then(Stage::future("touch", 8, |item: Vec<u8>| async move {
            Ok::<_, String>(item)
        }))
        .run((0..1000).map(|_| vec![0_u8; ITEM_BYTES]))
        .unwrap()
        .collect();
    drop(warm);
    let (before, _) = resident();
    let mut taken = 0_u64;
    let mut sum = 0_u64;
    let results = Pipeline::new()
        .then(Stage::future("touch", 8, |mut item: Vec<u8>| async move {
            item[0] = item[0].wrapping_add(1);
            Ok::<_, String>(item)
        }))
        .then(Stage::blocking("measure", 2, |item: Vec<u8>| {
            Ok::<_, String>(u64::from(item[0]) + item.len() as u64)
        }))
        .run((0..ITEMS).map(|index| vec![(index % 251) as u8; ITEM_BYTES]))
        .unwrap();
    for result in results {
        sum += result.unwrap();
        taken += 1;
        // A slow caller: it pauses every 20,000 items, so the stages wait on it.
        if taken.is_multiple_of(20_000) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (_, peak) = resident();
    assert_eq!(taken, ITEMS);
    let expected: u64 = (0..ITEMS)
        .map(|i| (i % 251 + 1) % 256 + ITEM_BYTES as u64)
        .sum();
    assert_eq!(sum, expected);
    let growth = peak.saturating_sub(before);
    eprintln!(
        "peak resident growth: {} KiB over {} KiB",
        growth >> 10,
        before >> 10
    );
    assert!(
        growth < 64 << 20,
        "peak resident memory grew by {} MiB",
        growth >> 20
    );
}
