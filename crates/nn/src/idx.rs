//! IDX files: `0x00 0x00 dtype ndims`, big-endian u32 dimensions, then the data. Only unsigned
//! bytes (dtype 0x08) are read: images and labels of the MNIST family.

use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum IdxError {
    #[error(
        "{path}: not found. Fashion-MNIST comes as a Debian package: `sudo apt-get install dataset-fashion-mnist` puts it in /usr/share/datasets/fashion-mnist (or pass --data DIR)"
    )]
    Missing { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: corrupt gzip stream: {source}")]
    Gzip { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an IDX file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: truncated: expected {expected} bytes, found {found}")]
    Truncated { path: PathBuf, expected: usize, found: usize },
}

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file, decompressing it when it starts with the gzip magic bytes (see
/// `decode_idx`).
pub fn read_idx(path: &Path) -> Result<IdxArray, IdxError> {
    let raw = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => IdxError::Missing { path: path.into() },
        _ => IdxError::Io { path: path.into(), source },
    })?;
    decode_idx(path, &raw)
}

/// The IDX array in the bytes `raw` of the file `path` (named in errors; a URL in a browser),
/// gzip-compressed or not. What is read is bounded by what the header declares: a compressed
/// stream is decompressed no further than the header's size (so a small file cannot make it
/// allocate without bound), and a declared size that does not fit memory is refused.
pub fn decode_idx(path: &Path, raw: &[u8]) -> Result<IdxArray, IdxError> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return parse(path, raw);
    }
    let gzip = |source| IdxError::Gzip { path: path.into(), source };
    let mut stream = flate2::read::GzDecoder::new(raw);
    let mut head = vec![0u8; 4];
    read_up_to(&mut stream, &mut head).map_err(gzip)?;
    let ndims = if head.len() == 4 { head[3] as usize } else { 0 };
    let mut dims = vec![0u8; 4 * ndims];
    read_up_to(&mut stream, &mut dims).map_err(gzip)?;
    head.extend_from_slice(&dims);
    let expected = header(path, &head)?.1;
    // The data, read as it comes: the buffer grows with what the stream actually holds.
    stream.take((expected - head.len()) as u64).read_to_end(&mut head).map_err(gzip)?;
    parse(path, &head)
}

/// Reads into `buffer` until it is full or the stream ends; keeps what was read.
fn read_up_to(stream: &mut impl Read, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    let wanted = buffer.len();
    buffer.clear();
    stream.take(wanted as u64).read_to_end(buffer).map(|_| ())
}

/// The dims an IDX header declares, and the file's whole size: header and data.
fn header(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, usize), IdxError> {
    let format = |message: String| IdxError::Format { path: path.into(), message };
    let truncated = |expected: usize| IdxError::Truncated { path: path.into(), expected, found: bytes.len() };
    if bytes.len() < 4 {
        return Err(truncated(4));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format(format!("magic bytes {:02x} {:02x}, expected 00 00", bytes[0], bytes[1])));
    }
    if bytes[2] != 0x08 {
        return Err(format(format!("element type 0x{:02x}, only unsigned bytes (0x08) are supported", bytes[2])));
    }
    let ndims = bytes[3] as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(truncated(header));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let size = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).and_then(|n| n.checked_add(header));
    let size = size
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| format(format!("its header declares dimensions {dims:?}, more bytes than any memory holds")))?;
    Ok((dims, size))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<IdxArray, IdxError> {
    let (dims, expected) = header(path, bytes)?;
    if bytes.len() < expected {
        return Err(IdxError::Truncated { path: path.into(), expected, found: bytes.len() });
    }
    let header = 4 + 4 * dims.len();
    Ok(IdxArray { dims, data: bytes[header..expected].to_vec() })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        bytes.extend(dims.iter().flat_map(|d| d.to_be_bytes()));
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn reads_raw_and_gzip_files() {
        let bytes = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).expect("gzip");
        for path in [temp_file("raw", &bytes), temp_file("packed.gz", &gz.finish().expect("gzip"))] {
            let array = read_idx(&path).expect("valid file");
            assert_eq!(array, IdxArray { dims: vec![2, 3], data: vec![1, 2, 3, 4, 5, 6] });
        }
    }

    #[test]
    fn truncated_file_names_path_and_sizes() {
        let path = temp_file("short", &idx_bytes(&[10], &[1, 2, 3]));
        let message = read_idx(&path).expect_err("truncated").to_string();
        assert!(message.contains("short") && message.contains("truncated"), "{message}");
        assert!(message.contains("expected 18 bytes, found 11"), "{message}");
    }

    #[test]
    fn bad_magic_and_dtype_are_rejected() {
        let bad_magic = read_idx(&temp_file("magic", &[1, 2, 8, 1, 0, 0, 0, 0])).expect_err("bad magic");
        assert!(bad_magic.to_string().contains("magic"), "{bad_magic}");
        let bad_type = read_idx(&temp_file("dtype", &[0, 0, 0x0d, 1, 0, 0, 0, 0])).expect_err("float file");
        assert!(bad_type.to_string().contains("0x0d"), "{bad_type}");
    }

    #[test]
    fn missing_file_says_how_to_get_the_data() {
        let message = read_idx(Path::new("/nonexistent/train-images")).expect_err("missing").to_string();
        assert!(message.contains("apt-get install dataset-fashion-mnist"), "{message}");
    }

    #[test]
    fn corrupt_gzip_is_reported() {
        let message = read_idx(&temp_file("broken.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3])).expect_err("corrupt").to_string();
        assert!(message.contains("gzip"), "{message}");
    }
}
