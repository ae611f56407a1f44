#![no_main]

use std::sync::OnceLock;

/// One scratch directory per fuzzing process, emptied before every input.
static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let root = SCRATCH.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let dest = root.path().join("pgdata");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir(&dest).expect("mkdir");
    barman::fuzzing::tar_stream(data, &dest);
    // Nothing may land beside the target.
    let entries: Vec<_> = std::fs::read_dir(root.path()).expect("read_dir").flatten().collect();
    assert_eq!(entries.len(), 1, "an entry escaped the target directory");
});
