//! How a layer's parameters start, drawn from a seeded generator so a model is the same on
//! every run.

use rand::Rng;
use rand::rngs::StdRng;

/// The initialisation of a layer's weights (`fan_in`, `fan_out`: the inputs and outputs one
/// weight connects, kernel taps included) and biases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// PyTorch's default for linear and convolution layers: weights and biases uniform in
    /// `±1/√fan_in`.
    #[default]
    Pytorch,
    /// Xavier (Glorot) uniform: weights in `±√(6/(fan_in + fan_out))`, biases zero.
    Xavier,
    /// He (Kaiming) normal, for ReLU networks: weights `N(0, 2/fan_in)`, biases zero.
    He,
    /// Weights `N(0, 0.02²)` whatever the fan, biases zero: the DCGAN paper's, and GPT-2's.
    Small,
}

impl Init {
    pub const ALL: [Init; 4] = [Init::Pytorch, Init::Xavier, Init::He, Init::Small];

    pub fn name(self) -> &'static str {
        match self {
            Init::Pytorch => "pytorch",
            Init::Xavier => "xavier",
            Init::He => "he",
            Init::Small => "small",
        }
    }

    /// `n` weights.
    pub fn weights(self, n: usize, fan_in: usize, fan_out: usize, rng: &mut StdRng) -> Vec<f32> {
        let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        match self {
            Init::Pytorch => uniform(n, 1.0 / fan_in.sqrt(), rng),
            Init::Xavier => uniform(n, (6.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::He => normal(n, (2.0 / fan_in).sqrt(), rng),
            Init::Small => normal(n, 0.02, rng),
        }
    }

    /// `n` entries of an embedding table: `N(0, 0.02²)` under `Small` (GPT-2's), else `N(0, 1)`
    /// (PyTorch's `nn.Embedding`).
    pub fn embeddings(self, n: usize, rng: &mut StdRng) -> Vec<f32> {
        match self {
            Init::Small => normal(n, 0.02, rng),
            Init::Pytorch | Init::Xavier | Init::He => normal(n, 1.0, rng),
        }
    }

    /// `n` biases.
    pub fn biases(self, n: usize, fan_in: usize, rng: &mut StdRng) -> Vec<f32> {
        match self {
            Init::Pytorch => uniform(n, 1.0 / (fan_in.max(1) as f64).sqrt(), rng),
            Init::Xavier | Init::He | Init::Small => vec![0.0; n],
        }
    }
}

fn uniform(n: usize, bound: f64, rng: &mut StdRng) -> Vec<f32> {
    let bound = bound as f32;
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

/// `n` draws of `N(0, std²)` by the Box–Muller transform.
fn normal(n: usize, std: f64, rng: &mut StdRng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
            (std * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn moments(v: &[f32]) -> (f64, f64) {
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        (mean, var)
    }

    #[test]
    fn each_initialiser_draws_its_distribution() {
        let mut rng = StdRng::seed_from_u64(1);
        let n = 200_000;
        // Uniform in ±b has variance b²/3.
        let (mean, var) = moments(&Init::Pytorch.weights(n, 100, 10, &mut rng));
        assert!(mean.abs() < 1e-3 && (var - 0.01 / 3.0).abs() < 1e-4, "pytorch: {mean} {var}");
        let (mean, var) = moments(&Init::Xavier.weights(n, 100, 200, &mut rng));
        assert!(mean.abs() < 1e-3 && (var - 6.0 / 300.0 / 3.0).abs() < 1e-4, "xavier: {mean} {var}");
        let (mean, var) = moments(&Init::He.weights(n, 50, 10, &mut rng));
        assert!(mean.abs() < 1e-3 && (var - 2.0 / 50.0).abs() < 1e-3, "he: {mean} {var}");
        assert!(Init::He.biases(5, 50, &mut rng).iter().all(|&b| b == 0.0));
        let (mean, var) = moments(&Init::Small.weights(n, 50, 10, &mut rng));
        assert!(mean.abs() < 1e-3 && (var - 4e-4).abs() < 1e-5, "small: {mean} {var}");
    }

    #[test]
    fn embeddings_are_unit_normal_except_under_small() {
        let mut rng = StdRng::seed_from_u64(2);
        let n = 200_000;
        for init in [Init::Pytorch, Init::Xavier, Init::He] {
            let (mean, var) = moments(&init.embeddings(n, &mut rng));
            assert!(mean.abs() < 1e-2 && (var - 1.0).abs() < 2e-2, "{}: {mean} {var}", init.name());
        }
        let (mean, var) = moments(&Init::Small.embeddings(n, &mut rng));
        assert!(mean.abs() < 1e-3 && (var - 4e-4).abs() < 1e-5, "small: {mean} {var}");
    }
}
