//! The readers of files users hand Kiln — checkpoints, IDX data (raw and gzip), golden cases,
//! images — fed random bytes and mutations of valid files: never a panic, and never an
//! allocation larger than the file justifies. Each input runs under an allocation cap (the
//! bytes in use may grow by at most a bound proportional to the input); past it an allocation
//! fails, which aborts this test. `KILN_FUZZ_CASES=N` runs N inputs per reader (default 64).

use std::path::Path;

use cap::Cap;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[global_allocator]
static ALLOCATOR: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

const MIB: usize = 1 << 20;

/// Runs `read` with the bytes in use allowed to grow by at most `bound`.
fn capped<T>(bound: usize, read: impl FnOnce() -> T) -> T {
    let base = ALLOCATOR.allocated();
    ALLOCATOR.set_limit(base + bound).expect("limit");
    let result = read();
    ALLOCATOR.set_limit(usize::MAX).expect("limit");
    result
}

/// A valid file of each reader, to mutate.
fn seeds(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let cases = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let golden = std::fs::read(cases.join("conv2d__basic.safetensors"))
        .or_else(|_| std::fs::read(cases.join("relu__2d.safetensors")))
        .expect("a golden case");
    let idx: Vec<u8> = [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4].into_iter().chain(0..32).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &idx).expect("gzip");
    let png_path = dir.join("seed.png");
    image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as u8])).save(&png_path).expect("png");
    let mut jpeg = Vec::new();
    let rgb = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 7]));
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&rgb).expect("jpeg");
    let mut checkpoint = kiln::nn::Checkpoint {
        tensors: Default::default(),
        counters: [("w.step".to_string(), 3)].into_iter().collect(),
        metadata: [("model".to_string(), "mlp".to_string())].into_iter().collect(),
    };
    checkpoint.tensors.insert("w".into(), kiln::core::HostTensor::f32(vec![2, 3], vec![1.0; 6]).expect("tensor"));
    let checkpoint_path = dir.join("seed.st");
    checkpoint.save(&checkpoint_path).expect("save");
    vec![
        ("checkpoint", std::fs::read(&checkpoint_path).expect("read")),
        ("golden", golden),
        ("idx", idx),
        ("idx.gz", gz.finish().expect("gzip")),
        ("png", std::fs::read(&png_path).expect("read")),
        ("jpeg", jpeg),
    ]
}

/// Reads `bytes` as `kind` through the file (every reader takes a path), under the cap.
fn read(kind: &str, bytes: &[u8], path: &Path) {
    std::fs::write(path, bytes).expect("write");
    // Raw formats are read whole and copied a few times; gzip may hold up to deflate's
    // 1,032-fold ratio of data; an image decoder gets the budget `predict` gives it, and its
    // own working buffers beside.
    let raw = 8 * bytes.len() + MIB;
    let gzip = 4 * 1032 * bytes.len() + 4 * MIB;
    let image = 2 * kiln::cli::predict::decode_budget(bytes.len()) as usize + MIB;
    match kind {
        "checkpoint" => drop(capped(raw, || kiln::nn::Checkpoint::load(path))),
        "golden" => drop(capped(raw, || kiln::golden::Case::load(path))),
        "idx" => drop(capped(raw, || kiln::nn::read_idx(path))),
        "idx.gz" => drop(capped(gzip, || kiln::nn::read_idx(path))),
        _ => drop(capped(image, || kiln::cli::predict::load_image(path, 28, kiln::cli::predict::Invert::Auto))),
    }
}

#[test]
fn readers_survive_random_and_mutated_bytes() {
    let dir = std::env::temp_dir().join(format!("kiln-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cases = std::env::var("KILN_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64);
    for (kind, seed) in seeds(&dir) {
        let path = dir.join(format!("input.{kind}"));
        read(kind, &seed, &path);
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let (len, whole) = (seed.len(), seed.clone());
        let mutations = prop::collection::vec((0..len, any::<u8>()), 1..8);
        let inputs = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            mutations.prop_map(move |edits| {
                let mut bytes = seed.clone();
                for (at, value) in edits {
                    bytes[at] = value;
                }
                bytes
            }),
            (0..len).prop_map(move |cut| whole[..cut].to_vec()),
        ];
        let outcome = runner.run(&inputs, |bytes| {
            read(kind, &bytes, &path);
            Ok(())
        });
        outcome.unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}
