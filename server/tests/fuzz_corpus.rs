//! Replays the fuzz targets' committed corpus (`fuzz/corpus/TARGET/*`)
//! through the same checks the fuzzer runs, so an input that once found a
//! bug stays a regression test under `cargo test`, with no fuzzer and no
//! nightly. `.ci/fuzz.sh` runs the real coverage-guided search.

use std::path::Path;

use thingcall_server::fuzzing::TARGETS;

#[test]
fn every_corpus_input_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name} has no corpus");
        for input in inputs {
            let data = std::fs::read(&input).expect("a readable corpus file");
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name} fails on {}", input.display());
            replayed += 1;
        }
    }
    println!("{replayed} corpus inputs replayed");
}
