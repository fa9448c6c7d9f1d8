//! Character-level language models (`kiln::nn::language`): gpt's attention is causal (a later
//! token never changes an earlier position's logits); generating one token at a time — gpt's
//! key/value cache, a recurrent model's state carried in the store — gives the logits the
//! whole-window model gives, on the GPU and the CPU; sampling with a seed is reproducible and
//! top-k never draws past the k likeliest; a run stopped and resumed ends exactly as one never
//! stopped; `kiln generate` continues a prompt.

mod common;

use kiln::core::{Backend, HostTensor, Result};
use kiln::graph::{Program, Store};
use kiln::nn::language::{Generator, LmConfig, LmProgress, LmRow, Sampler, build_language_model};
use kiln::nn::text::Corpus;

const VOCAB: usize = 11;

/// A small model of each kind: context 12, narrow, one block.
fn config(model: &str) -> LmConfig {
    LmConfig { context: 12, width: 16, layers: 2, heads: 2, embedding: 8, batch: 3, ..LmConfig::named(model) }
}

/// The whole-window model's logits `[T, V]` for one window, over `store`.
fn window_logits<B: Backend>(store: &mut Store<B>, config: &LmConfig, ids: &[i32]) -> Vec<f32> {
    let model = build_language_model(config, VOCAB, 1).expect("model");
    let program = Program::compile(store, &model.graph, &[model.logits]).expect("compile");
    program.set(model.ids, &HostTensor::i32(vec![1, config.context], ids.to_vec()).expect("ids")).expect("set");
    program.run(store, &[model.logits]).expect("run").remove(0).as_f32().expect("f32").to_vec()
}

fn tokens(n: usize, seed: u64) -> Vec<i32> {
    common::random_vec(n, seed).iter().map(|v| ((v + 1.0) * 5.49) as i32).collect()
}

#[test]
fn a_later_token_never_changes_an_earlier_positions_logits() {
    let config = config("gpt");
    let mut store = Store::new(common::gpu());
    let ids = tokens(12, 1);
    let before = window_logits(&mut store, &config, &ids);
    let mut changed = ids.clone();
    changed[7] = (changed[7] + 1) % VOCAB as i32;
    let after = window_logits(&mut store, &config, &changed);
    assert_eq!(before[..7 * VOCAB], after[..7 * VOCAB], "positions 0..7 see nothing of position 7");
    assert_ne!(before[7 * VOCAB..], after[7 * VOCAB..], "positions 7.. see it");
}

/// The logits a generator gives after each prefix of `ids`, against the whole window's rows.
fn generator_matches_window<B: Backend>(backend: B, model: &str, cached: bool) {
    let config = config(model);
    let mut store = Store::new(backend);
    let ids = tokens(12, 2);
    let whole = window_logits(&mut store, &config, &ids);
    let mut generator = Generator::compile(&mut store, &config, VOCAB, cached).expect("generator");
    for length in 1..=ids.len() {
        let got = generator.next(&mut store, &ids[..length]).expect("next");
        let want = &whole[(length - 1) * VOCAB..length * VOCAB];
        let error = common::relative_error(&got, want);
        assert!(error < 1e-5, "{model} (cached: {cached}) after {length} tokens: relative error {error:.2e}");
    }
}

#[test]
fn the_key_value_cache_gives_the_whole_windows_logits_on_the_gpu_and_the_cpu() {
    generator_matches_window(common::gpu(), "gpt", true);
    generator_matches_window(kiln::cpu::Cpu, "gpt", true);
    generator_matches_window(common::gpu(), "gpt", false);
}

/// Past the context, the cache starts again from the last half window and fills up before it
/// starts again: each token costs one position, and its logits are the window's over the
/// tokens the cache holds.
#[test]
fn past_the_context_the_cache_restarts_from_the_last_half_window() {
    let config = config("gpt");
    let (t, mut store) = (config.context, Store::new(common::gpu()));
    let ids = tokens(4 * t, 3);
    let mut cached = Generator::compile(&mut store, &config, VOCAB, true).expect("cached");
    let mut window = Generator::compile(&mut store, &config, VOCAB, false).expect("window");
    let mut start = 0;
    for length in 1..=ids.len() {
        if length - start > t {
            start = length - t / 2;
        }
        let got = cached.next(&mut store, &ids[..length]).expect("cached");
        let want = window.next(&mut store, &ids[start..length]).expect("window");
        let error = common::relative_error(&got, &want);
        assert!(error < 1e-5, "after {length} tokens (the cache from {start}): relative error {error:.2e}");
    }
}

#[test]
fn recurrent_generators_carry_their_state_in_the_store() {
    for model in ["rnn", "gru", "lstm"] {
        generator_matches_window(common::gpu(), model, false);
    }
    generator_matches_window(kiln::cpu::Cpu, "lstm", false);
}

#[test]
fn sampling_is_reproducible_and_top_k_stays_in_the_top_k() {
    let logits: Vec<f32> = common::random_vec(50, 3).iter().map(|v| 4.0 * v).collect();
    let mut order: Vec<usize> = (0..50).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let draws = |seed: u64, k: usize| -> Vec<usize> {
        let mut sampler = Sampler::new(1.0, k, seed).expect("sampler");
        (0..2000).map(|_| sampler.draw(&logits)).collect()
    };
    assert_eq!(draws(7, 5), draws(7, 5), "a seed reproduces the draws");
    assert_ne!(draws(7, 5), draws(8, 5));
    let top5 = draws(9, 5);
    assert!(top5.iter().all(|t| order[..5].contains(t)), "top-5 draws only the five likeliest");
    assert!(order[..5].iter().all(|t| top5.contains(t)), "and each of them");
    let all = draws(9, 0);
    assert!(all.iter().any(|t| !order[..5].contains(t)), "without top-k, others too");
    let mut greedy = Sampler::new(0.0, 0, 1).expect("greedy");
    assert_eq!(greedy.draw(&logits), order[0], "temperature 0 takes the likeliest");
    assert!(Sampler::new(f32::NAN, 0, 1).is_err());
}

/// Stops the run at its first row after `stop_at` steps, as a kill would.
struct Stopper {
    stop_at: Option<usize>,
}

impl<B: Backend> LmProgress<B> for Stopper {
    fn row(&mut self, row: &LmRow) -> Result<()> {
        match self.stop_at {
            Some(step) if row.step >= step => Err(kiln::core::Error::data("test", "stopped")),
            _ => Ok(()),
        }
    }
}

#[test]
fn a_resumed_text_run_ends_exactly_like_an_uninterrupted_one() {
    let text: Vec<u8> = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README")
        .into_bytes()
        .into_iter()
        .take(20_000)
        .collect();
    let corpus = Corpus::from_bytes(text, "README").expect("corpus");
    for model in ["gpt", "gru"] {
        let settings = LmConfig { steps: 6, eval_every: 3, warmup: 2, ..config(model) };
        let train = |config: &LmConfig, stop_at: Option<usize>| {
            kiln::nn::language::train_language_model(common::gpu(), config, &corpus, &mut Stopper { stop_at })
        };
        let whole = train(&settings, None).expect("six steps");
        let path = std::env::temp_dir().join(format!("kiln-language-{model}-{}.safetensors", std::process::id()));
        let first = LmConfig { checkpoint: Some(path.clone()), ..settings.clone() };
        assert!(train(&first, Some(3)).is_err(), "stopped after three steps");
        let rest = train(&LmConfig { resume: Some(path.clone()), ..settings.clone() }, None).expect("resumed");
        let figures = |rows: &[LmRow]| -> Vec<(usize, f64, f64, String)> {
            rows.iter().map(|r| (r.step, r.train_loss, r.validation_loss, r.sample.clone())).collect()
        };
        assert_eq!(figures(&rest.metrics.rows), figures(&whole.metrics.rows), "{model}: losses and samples resume");
        assert_eq!(rest.store.read_all().expect("read"), whole.store.read_all().expect("read"), "{model}: bit for bit");
        let changed = LmConfig { resume: Some(path.clone()), lr: 1e-2, ..settings };
        let text = train(&changed, None).err().expect("refused").to_string();
        assert!(text.contains("--lr") && text.contains("resume"), "{text}");
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn kiln_generate_continues_a_prompt_and_refuses_what_it_cannot_read() {
    let text = std::env::temp_dir().join(format!("kiln-text-{}.txt", std::process::id()));
    std::fs::write(&text, "the quick brown fox jumps over the lazy dog. ".repeat(100)).expect("text");
    let checkpoint = std::env::temp_dir().join(format!("kiln-gpt-{}.safetensors", std::process::id()));
    let (text_arg, checkpoint_arg) = (text.to_str().expect("utf-8"), checkpoint.to_str().expect("utf-8"));
    let (ok, out, err) = common::kiln(&[
        "train",
        "--model",
        "gpt",
        "--text",
        text_arg,
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--context",
        "16",
        "--width",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--batch",
        "4",
        "--checkpoint",
        checkpoint_arg,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("bits per character") && out.contains("bigram") && out.contains("sample:"), "{out}");
    for cache in [&[][..], &["--no-cache"][..]] {
        let args = [
            &["generate", "--checkpoint", checkpoint_arg, "--prompt", "the ", "--tokens", "20", "--seed", "3"][..],
            cache,
        ]
        .concat();
        let (ok, out, err) = common::kiln(&args);
        assert!(ok && out.starts_with("the ") && out.trim_end().len() >= 4 + 20 - 2, "{out} {err}");
        assert!(err.contains("tokens/s"), "{err}");
    }
    let (ok, _, err) = common::kiln(&["generate", "--checkpoint", checkpoint_arg, "--prompt", "Zebra"]);
    assert!(!ok && err.contains("--prompt") && err.contains("0x5a"), "a byte it never saw: {err}");
    let (ok, _, err) = common::kiln(&["train", "--model", "gpt", "--text", text_arg, "--epochs", "2"]);
    assert!(!ok && err.contains("--epochs"), "{err}");
    let (ok, _, err) = common::kiln(&["train", "--model", "mlp", "--context", "8"]);
    assert!(!ok && err.contains("--context"), "{err}");
    // `lstm` alone is the classifier of image rows; with text, the language model.
    let (ok, _, err) = common::kiln(&["train", "--model", "lstm", "--context", "8"]);
    assert!(!ok && err.contains("--context"), "{err}");
    let lstm = ["train", "--model", "lstm", "--text", text_arg, "--steps", "2", "--context", "8", "--width", "8"];
    let (ok, out, err) = common::kiln(&[&lstm[..], &["--batch", "2", "--eval-every", "2"][..]].concat());
    assert!(ok && out.contains("bits per character"), "{out} {err}");
    let _ = std::fs::remove_file(text);
    let _ = std::fs::remove_file(checkpoint);
}
