//! Texel copies of storage buffers. Mesa's CPU drivers (lavapipe, llvmpipe) load a storage
//! buffer element one SIMD lane at a time, a branch per lane, but fetch texels with vector
//! gathers: a kernel bound by its loads reads its operands from rgba32float textures, filled
//! by copies recorded just before its dispatch (a memcpy there, O(n²) beside a product's O(n³)).

use std::collections::HashMap;

use kiln_core::{Error, Result};

use crate::errors::scoped;
use crate::{Gpu, GpuBuffer};

/// Texels per texture row: 16 KiB, a multiple of the 256-byte row alignment of copies.
/// Kernels find texel `i` at `(i % TEXELS_PER_ROW, i / TEXELS_PER_ROW)`.
pub const TEXELS_PER_ROW: u32 = 1024;

const TEXEL_BYTES: u64 = 16;

/// Textures by binding slot and height, shared by every dispatch of a device: each dispatch
/// refills its own before it runs, and wgpu orders the copies and reads of one queue.
#[derive(Default)]
pub(crate) struct TexelTextures {
    by_slot_and_height: HashMap<(u32, u32), wgpu::Texture>,
}

impl TexelTextures {
    pub(crate) fn bytes(&self) -> u64 {
        self.by_slot_and_height.keys().map(|&(_, height)| u64::from(TEXELS_PER_ROW * height) * TEXEL_BYTES).sum()
    }
}

/// The copy of a buffer's first `texels` (4 floats each) into a texture, which the dispatch
/// carrying it records before itself.
pub struct Upload {
    buffer: wgpu::Buffer,
    texture: wgpu::Texture,
    texels: u32,
}

impl Upload {
    pub(crate) fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let rows = self.texels / TEXELS_PER_ROW;
        let tail = self.texels % TEXELS_PER_ROW;
        let copy = |encoder: &mut wgpu::CommandEncoder, first_row: u32, width: u32, height: u32| {
            let offset = u64::from(first_row) * u64::from(TEXELS_PER_ROW) * TEXEL_BYTES;
            let bytes_per_row = Some(TEXELS_PER_ROW * TEXEL_BYTES as u32);
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.buffer,
                    layout: wgpu::TexelCopyBufferLayout { offset, bytes_per_row, rows_per_image: None },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: 0, y: first_row, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            );
        };
        if rows > 0 {
            copy(encoder, 0, TEXELS_PER_ROW, rows);
        }
        if tail > 0 {
            copy(encoder, rows, tail, 1);
        }
    }
}

impl Gpu {
    /// An upload of `buffer`'s first `texels` into the texture of binding `slot`, and a view of
    /// that texture to bind; `None` where the texture would be taller than the adapter allows
    /// (the caller then reads the buffer itself).
    pub fn texel_upload(
        &self,
        buffer: &GpuBuffer,
        texels: u32,
        slot: u32,
    ) -> Result<Option<(Upload, wgpu::TextureView)>> {
        if u64::from(texels) * TEXEL_BYTES > buffer.size() {
            return Err(Error::data(
                "texel upload",
                format!("{texels} texels are past the end of a {}-byte buffer", buffer.size()),
            ));
        }
        let rows = texels.div_ceil(TEXELS_PER_ROW).max(1);
        let max = self.limits().max_texture_dimension_2d;
        if rows > max {
            return Ok(None);
        }
        let height = rows.next_power_of_two().min(max);
        let mut textures = self.texel_textures();
        let texture = match textures.by_slot_and_height.get(&(slot, height)) {
            Some(texture) => texture.clone(),
            None => {
                let texture = scoped(self.device(), "allocating a texel texture", || self.texel_texture(height))?;
                textures.by_slot_and_height.insert((slot, height), texture.clone());
                texture
            }
        };
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Some((Upload { buffer: buffer.raw().clone(), texture, texels }, view)))
    }

    fn texel_texture(&self, height: u32) -> wgpu::Texture {
        self.device().create_texture(&wgpu::TextureDescriptor {
            label: Some("kiln texels"),
            size: wgpu::Extent3d { width: TEXELS_PER_ROW, height, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        })
    }
}
