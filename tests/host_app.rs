//! `examples/host_app.rs` — a host application with its own wgpu device, using the library
//! alone — run as the test of that promise: a short run on the real Fashion-MNIST learns.

#[path = "../examples/host_app.rs"]
mod host_app;

#[test]
fn a_host_application_trains_and_evaluates_with_its_own_device() {
    let data = kiln::nn::FashionMnist::load(std::path::Path::new(kiln::nn::DEFAULT_DIR))
        .unwrap_or_else(|e| panic!("this test reads the real Fashion-MNIST: {e}"));
    let (device, queue) = host_app::open_device().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let accuracy = host_app::run(device, queue, &data, 300).expect("trains");
    assert!(accuracy > 0.75, "300 steps of Adam reach a test accuracy of {accuracy}");
}

#[test]
fn the_example_uses_no_command_line_code() {
    let source = include_str!("../examples/host_app.rs");
    for layer in ["kiln::cli", "clap", "indicatif", "image::"] {
        assert!(!source.contains(layer), "the host application imports `{layer}`");
    }
}

#[test]
fn the_library_depends_on_no_command_line_terminal_or_image_crate() {
    for manifest in [
        include_str!("../crates/nn/Cargo.toml"),
        include_str!("../crates/graph/Cargo.toml"),
        include_str!("../crates/core/Cargo.toml"),
    ] {
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or("").split("\n[").next().unwrap_or("");
        for crate_name in ["clap", "indicatif", "image", "plotters"] {
            assert!(
                !dependencies.lines().any(|l| l.trim_start().starts_with(crate_name)),
                "{crate_name} in:\n{dependencies}"
            );
        }
    }
}
