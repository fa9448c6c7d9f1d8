//! Kernels chosen by measurement: for a product's shapes, every candidate plan is timed once
//! on the adapter, the fastest is kept for the process and cached on disk per adapter, driver
//! and shape, so later processes start with it.
//!
//! `KILN_TUNE` says how: `cached` (the default) takes a cached choice and measures only what the
//! cache lacks; `full` measures every shape anew and replaces the cached choices; `off` measures
//! nothing and takes the rules the kernels had before the tuner. The cache is the JSON file
//! `KILN_TUNE_CACHE`, else `$XDG_CACHE_HOME/kiln/tune.json`, else `~/.cache/kiln/tune.json`.
//! A choice, once in the cache, is never replaced except by `full`: processes that share a cache
//! compute every product the same way, so a resumed run adds in the order the first run did.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use kiln_core::{Error, Result};
use kiln_gpu::{Dispatch, Gpu};

/// Products of fewer floating-point operations run by the rules: their times are mostly launch
/// overhead, which no kernel changes. Above it even a small product pays for a rule's poor
/// choice many times over (the LSTM's weight gradients in the README).
pub(crate) const MIN_FLOPS: u64 = 1 << 20;

/// The cache file's format; a file of another version is ignored (and replaced). Raised also
/// when new kernels join the candidates, so that choices measured without them are measured
/// again (2: the subgroup matmul kernels; 3: those kernels with a batch folded into the
/// columns).
const VERSION: u64 = 3;

/// How the tuner works, from `KILN_TUNE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuneMode {
    /// No measuring: the shapes' rules choose.
    Off,
    /// Cached choices, measuring only shapes the cache lacks (the default).
    Cached,
    /// Every shape measured again, its cached choice replaced.
    Full,
}

impl TuneMode {
    /// The mode `KILN_TUNE` asks for; an unknown value is an error naming the variable and the
    /// values it takes.
    pub fn from_env() -> Result<Self> {
        match std::env::var("KILN_TUNE") {
            Err(_) => Ok(TuneMode::Cached),
            Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
                "" | "cached" => Ok(TuneMode::Cached),
                "off" => Ok(TuneMode::Off),
                "full" => Ok(TuneMode::Full),
                _ => Err(Error::Unsupported(format!(
                    "KILN_TUNE={value}: expected off (the built-in rules), cached (the default: measure what the cache \
                     lacks) or full (measure every shape again)"
                ))),
            },
        }
    }
}

/// Choices made in this process, by adapter-qualified key: a product is planned several times
/// (for its scratch, then its kernel) and must get the same plan each time.
fn memo() -> &'static Mutex<HashMap<String, String>> {
    static MEMO: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    MEMO.get_or_init(Mutex::default)
}

/// The adapter and driver a choice was measured on, as the cache keys name them; for a CPU
/// adapter also the processor, which its name does not tell (llvmpipe names only its vector
/// width) and which decides as much as the driver: a cache in a home directory shared by
/// hosts of different processors must not carry one host's choices to another.
fn adapter_key(gpu: &Gpu) -> String {
    let info = gpu.info();
    let adapter = format!("{} | {:?} | {} {}", info.name, info.backend, info.driver, info.driver_info);
    match info.device_type {
        wgpu::DeviceType::Cpu => format!("{adapter} | {}", host_processor()),
        _ => adapter,
    }
}

/// The host's processor model (Linux's `/proc/cpuinfo`, else the architecture) and the
/// threads it runs.
fn host_processor() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim() == "model name")
        .map_or(std::env::consts::ARCH, |(_, model)| model.trim());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model} × {threads} threads")
}

/// The fastest of `candidates` (names `measure` takes) for `key` on this adapter, or `None`
/// where the tuner does not measure (`KILN_TUNE=off`, or in a browser, which can neither wait
/// for the device nor keep a file). `measure` runs a candidate once and returns the seconds it
/// took, or `None` for one that cannot run.
///
/// Candidates are run in rounds, each round through all of them, so that a burst of load on
/// the host slows every candidate alike rather than one: a warm-up round (where one over
/// `DROP` times the fastest so far stops), then `ROUNDS` timed rounds; each keeps its fastest.
pub(crate) fn choose(
    gpu: &Gpu,
    key: &str,
    candidates: &[&str],
    mut measure: impl FnMut(&str) -> Result<Option<f64>>,
) -> Result<Option<String>> {
    const ROUNDS: usize = 3;
    const DROP: f64 = 3.0;
    let mode = TuneMode::from_env()?;
    if mode == TuneMode::Off || cfg!(target_arch = "wasm32") || candidates.len() < 2 {
        return Ok(None);
    }
    let key = format!("{} | {key}", adapter_key(gpu));
    let known = |name: &String| candidates.contains(&name.as_str());
    if let Some(name) = lock(memo()).get(&key).filter(|n| known(n)) {
        return Ok(Some(name.clone()));
    }
    let path = cache_path();
    if mode == TuneMode::Cached
        && let Some(name) = path.as_deref().and_then(|p| read_cache(p).remove(&key)).filter(known)
    {
        lock(memo()).insert(key, name.clone());
        return Ok(Some(name));
    }
    let mut alive: Vec<(&str, f64)> = Vec::new();
    let mut fastest_warm = f64::INFINITY;
    for &name in candidates {
        let Some(warm) = measure(name)? else { continue };
        if warm <= DROP * fastest_warm {
            alive.push((name, f64::INFINITY));
        }
        fastest_warm = fastest_warm.min(warm);
    }
    for _ in 0..ROUNDS {
        for (name, fastest) in &mut alive {
            if let Some(seconds) = measure(name)? {
                *fastest = fastest.min(seconds);
            }
        }
    }
    for (name, seconds) in &alive {
        log::debug!("kiln tune: {key}: {name} {:.3} ms", seconds * 1e3);
    }
    let best = alive.into_iter().filter(|(_, s)| s.is_finite()).min_by(|a, b| a.1.total_cmp(&b.1));
    let Some((name, seconds)) = best else { return Ok(None) };
    log::info!("kiln tune: {key}: {name} ({:.3} ms)", seconds * 1e3);
    // Where another process cached a choice meanwhile, its choice is taken, so both agree.
    let name = match &path {
        Some(path) => store(path, &key, name, mode == TuneMode::Full, candidates),
        None => name.to_string(),
    };
    lock(memo()).insert(key, name.clone());
    Ok(Some(name))
}

/// Seconds one run of `dispatches` takes: by the device's timestamps where it has them, else
/// by the host's clock around a waited submission.
pub(crate) fn time(gpu: &Gpu, dispatches: &[&Dispatch]) -> Result<f64> {
    let profile = gpu.profile(dispatches)?;
    Ok(match profile.timer {
        kiln_gpu::Timer::Timestamps { .. } => profile.seconds.iter().sum(),
        kiln_gpu::Timer::WallClock => profile.wall_seconds,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the cache lives, or `None` without a home to keep it in.
fn cache_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("KILN_TUNE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("kiln/tune.json")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/kiln/tune.json")))
}

/// The cached choices by key; an unreadable, malformed or other-version file holds none (it is
/// a cache: the shapes are measured again), which the log says.
fn read_cache(path: &Path) -> BTreeMap<String, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            log::warn!("kiln tune: cannot read {}: {e}; measuring again", path.display());
            return BTreeMap::new();
        }
    };
    let parsed: std::result::Result<serde_json::Value, _> = serde_json::from_str(&text);
    let choices = parsed.ok().filter(|v| v["version"].as_u64() == Some(VERSION)).and_then(|v| {
        v["choices"].as_object().map(|o| {
            o.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect::<BTreeMap<_, _>>()
        })
    });
    choices.unwrap_or_else(|| {
        log::warn!(
            "kiln tune: {} is not a version-{VERSION} tuning cache; measuring again and replacing it",
            path.display()
        );
        BTreeMap::new()
    })
}

/// Adds `name` for `key` to the cache at `path` and returns the choice that stands: the cache's
/// own where it has one of `candidates` (unless `replace`). Writes go to a temporary file renamed over the
/// cache, under a lock file, so that concurrent processes neither tear the file nor lose each
/// other's choices. A cache that cannot be written leaves the choice to this process alone.
fn store(path: &Path, key: &str, name: &str, replace: bool, candidates: &[&str]) -> String {
    let Some(dir) = path.parent() else { return name.to_string() };
    if let Err(e) = std::fs::create_dir_all(dir) {
        log::warn!("kiln tune: cannot create {}: {e}; choices stay in this process", dir.display());
        return name.to_string();
    }
    let lock_path = path.with_extension("lock");
    let Some(_guard) = FileLock::acquire(&lock_path) else {
        log::warn!("kiln tune: {} stayed locked; choices stay in this process", lock_path.display());
        return name.to_string();
    };
    let mut choices = read_cache(path);
    let standing = match choices.get(key) {
        Some(cached) if !replace && candidates.contains(&cached.as_str()) => cached.clone(),
        _ => name.to_string(),
    };
    choices.insert(key.to_string(), standing.clone());
    let json = serde_json::json!({ "version": VERSION, "choices": choices });
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = serde_json::to_string_pretty(&json)
        .map_err(std::io::Error::other)
        .and_then(|text| std::fs::write(&temporary, text))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        log::warn!("kiln tune: cannot write {}: {e}; choices stay in this process", path.display());
    }
    standing
}

/// A lock file held while the cache is rewritten; one older than `STALE` is taken to be left
/// by a process that died holding it.
struct FileLock(PathBuf);

impl FileLock {
    const STALE: std::time::Duration = std::time::Duration::from_secs(30);

    fn acquire(path: &Path) -> Option<FileLock> {
        for _ in 0..200 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return Some(FileLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|age| age > Self::STALE) {
                        let _ = std::fs::remove_file(path);
                    } else {
                        std::thread::sleep(std::time::Duration::from_millis(25));
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["matmul/1", "matmul/2", "matmul_vec4/1", "matmul_texels_8x8/1"];

    fn scratch_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-tune-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("tune.json")
    }

    #[test]
    fn the_host_processor_is_named_with_its_threads() {
        let named = host_processor();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(named.ends_with(&format!(" × {threads} threads")), "{named}");
        let model = named.trim_end_matches(&format!(" × {threads} threads"));
        assert!(!model.is_empty() && !model.contains('\n'), "{named}");
        if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo")
            && cpuinfo.contains("model name")
        {
            assert!(cpuinfo.lines().any(|l| l.starts_with("model name") && l.ends_with(model)), "{named}");
        }
    }

    #[test]
    fn the_first_choice_stored_stands_unless_replaced() {
        let path = scratch_file("first");
        assert_eq!(store(&path, "k", "matmul_vec4/1", false, NAMES), "matmul_vec4/1");
        assert_eq!(store(&path, "k", "matmul_texels_8x8/1", false, NAMES), "matmul_vec4/1");
        assert_eq!(store(&path, "other", "matmul/2", false, NAMES), "matmul/2");
        assert_eq!(read_cache(&path).get("k").map(String::as_str), Some("matmul_vec4/1"));
        assert_eq!(store(&path, "k", "matmul_texels_8x8/1", true, NAMES), "matmul_texels_8x8/1");
        let cached = read_cache(&path);
        assert_eq!(cached.get("k").map(String::as_str), Some("matmul_texels_8x8/1"));
        assert_eq!(cached.get("other").map(String::as_str), Some("matmul/2"));
        assert!(!path.with_extension("lock").exists(), "the lock is released");
        // A cached name no candidate has (a kernel since removed) gives way.
        assert_eq!(store(&path, "k", "matmul/1", false, &["matmul/1"]), "matmul/1");
    }

    #[test]
    fn a_damaged_cache_holds_nothing_and_is_replaced() {
        for damage in ["{ not json", "[1, 2]", r#"{"version": 99, "choices": {"k": "matmul/1"}}"#, "\u{0}\u{1}"] {
            let path = scratch_file("damaged");
            std::fs::write(&path, damage).expect("write");
            assert!(read_cache(&path).is_empty(), "{damage:?}");
            assert_eq!(store(&path, "k", "matmul_vec4/1", false, NAMES), "matmul_vec4/1");
            assert_eq!(read_cache(&path).get("k").map(String::as_str), Some("matmul_vec4/1"), "{damage:?}");
        }
    }

    #[test]
    fn a_stale_lock_is_taken_over() {
        let path = scratch_file("stale");
        let lock_path = path.with_extension("lock");
        std::fs::write(&lock_path, "").expect("lock");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&lock_path).and_then(|f| f.set_modified(old)).expect("age");
        assert_eq!(store(&path, "k", "matmul/1", false, NAMES), "matmul/1");
        assert_eq!(read_cache(&path).get("k").map(String::as_str), Some("matmul/1"));
    }
}
