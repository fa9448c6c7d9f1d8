//! Every shader parses and validates with naga (the frontend wgpu itself uses), declares the
//! entry points the host calls, binds its uniform first in group 0, and declares each uniform
//! struct with the size of its host mirror. Needs no adapter.

use kiln_kernels::{SHADERS, Shader};
use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};
use naga::{AddressSpace, TypeInner};

/// The module, validated with the capabilities of exactly the features it declares.
fn parse(shader: &Shader) -> naga::Module {
    let (name, source) = (shader.name, shader.source);
    let module =
        naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(source)));
    validator(shader.features)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {}", e.emit_to_string(source)));
    module
}

fn validator(features: wgpu::Features) -> Validator {
    let subgroups = features.contains(wgpu::Features::SUBGROUP);
    let capabilities = if subgroups { Capabilities::SUBGROUP } else { Capabilities::default() };
    let mut validator = Validator::new(ValidationFlags::all(), capabilities);
    if subgroups {
        validator.subgroup_stages(ShaderStages::COMPUTE).subgroup_operations(SubgroupOperationSet::all());
    }
    validator
}

/// A module of subgroup kernels declares the feature: built without it, it fails, as it would
/// on an adapter without subgroups.
#[test]
fn subgroup_kernels_need_the_subgroup_feature() {
    let lanes = kiln_kernels::MATMUL_LANES;
    assert!(lanes.features.contains(wgpu::Features::SUBGROUP));
    let module = naga::front::wgsl::parse_str(lanes.source).expect("parses");
    assert!(validator(wgpu::Features::empty()).validate(&module).is_err());
    assert!(kiln_kernels::MATMUL.features.is_empty(), "matmul.wgsl builds on every adapter");
}

#[test]
fn every_shader_validates_and_declares_its_entry_points() {
    for shader in SHADERS {
        let module = parse(shader);
        let declared: Vec<&str> = module.entry_points.iter().map(|e| e.name.as_str()).collect();
        for entry in shader.entry_points {
            assert!(declared.contains(entry), "{}.wgsl lacks entry point `{entry}` (has {declared:?})", shader.name);
        }
        assert_eq!(
            declared.len(),
            shader.entry_points.len(),
            "{}.wgsl has entry points the host never calls: {declared:?}",
            shader.name
        );
    }
}

#[test]
fn uniform_structs_match_their_host_mirrors() {
    for shader in SHADERS {
        let module = parse(shader);
        for (name, host_size) in shader.params {
            let ty = module.types.iter().find(|(_, t)| t.name.as_deref() == Some(name));
            let (_, ty) = ty.unwrap_or_else(|| panic!("{}.wgsl declares no struct `{name}`", shader.name));
            let TypeInner::Struct { span, .. } = ty.inner else {
                panic!("{}.wgsl: `{name}` is not a struct", shader.name)
            };
            assert_eq!(
                span as usize, *host_size,
                "{}.wgsl: `{name}` is {span} bytes, the host struct {host_size}",
                shader.name
            );
        }
    }
}

#[test]
fn bindings_are_group_zero_with_the_uniform_first() {
    for shader in SHADERS {
        let module = parse(shader);
        for (_, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else { continue };
            assert_eq!(binding.group, 0, "{}.wgsl: {:?} is not in group 0", shader.name, var.name);
            let uniform = var.space == AddressSpace::Uniform;
            assert_eq!(
                uniform,
                binding.binding == 0,
                "{}.wgsl: {:?} breaks 'uniform at 0, storage after'",
                shader.name,
                var.name
            );
        }
    }
}
