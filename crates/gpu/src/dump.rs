//! `KILN_DUMP_SHADERS=DIR`: every pipeline Kiln creates is written to DIR as the WGSL it was
//! compiled from, headed by its entry point and specialisation constants, so a contributor can
//! read, diff or feed to other tools exactly what ran.

use std::path::Path;

use kiln_core::{Error, Result};

use crate::PipelineKey;

/// Writes `source` for `key` under the folder `KILN_DUMP_SHADERS` names, if it names one.
pub(crate) fn dump_shader(key: &PipelineKey, source: &str) -> Result<()> {
    let Some(dir) = std::env::var_os("KILN_DUMP_SHADERS") else { return Ok(()) };
    let constants: Vec<String> =
        key.constants.iter().map(|&(k, bits)| format!("{k}={}", f64::from_bits(bits))).collect();
    let name =
        [key.shader, key.entry].into_iter().map(String::from).chain(constants.iter().cloned()).collect::<Vec<_>>();
    let path = Path::new(&dir).join(format!("{}.wgsl", name.join(".")));
    let header = format!(
        "// Kiln pipeline: shaders/{}.wgsl, entry point `{}`, constants {{{}}}\n",
        key.shader,
        key.entry,
        constants.join(", ")
    );
    let io = |source| Error::Io { context: format!("KILN_DUMP_SHADERS: writing {}", path.display()), source };
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::write(&path, header + source).map_err(io)
}
