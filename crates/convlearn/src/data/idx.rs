//! MNIST's IDX files, gzip-compressed or raw, read with errors that name the file and the expectation.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::format(path, format!("gzip stream is damaged or truncated: {e}"))
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Checks the magic number and returns the dimensions and the payload.
fn parse_header<'a>(
    path: &Path,
    bytes: &'a [u8],
    dims: usize,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8])> {
    let expected = 0x0800 + dims as u32;
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!("file is {} bytes, too short for an IDX header", bytes.len()),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected {
        return Err(Error::format(
            path,
            format!(
                "wrong magic number 0x{magic:08x}: expected 0x{expected:08x} (IDX {what}: unsigned bytes, {dims} dimensions)"
            ),
        ));
    }
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!(
                "truncated header: expected {header} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let need: usize = shape.iter().product();
    let payload = &bytes[header..];
    if payload.len() < need {
        let dims_text: Vec<String> = shape.iter().map(ToString::to_string).collect();
        return Err(Error::format(
            path,
            format!(
                "truncated: the header promises {} = {need} bytes of {what}, the file holds {}",
                dims_text.join("×"),
                payload.len()
            ),
        ));
    }
    Ok((shape, &payload[..need]))
}

/// Reads an IDX3 image file: returns (count, rows, cols, pixels).
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bytes = read_maybe_gz(path)?;
    let (shape, payload) = parse_header(path, &bytes, 3, "images")?;
    Ok((shape[0], shape[1], shape[2], payload.to_vec()))
}

/// Reads an IDX1 label file.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gz(path)?;
    let (_, payload) = parse_header(path, &bytes, 1, "labels")?;
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(payload);
        v
    }

    #[test]
    fn reads_raw_and_gzip_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("imgs");
        std::fs::write(&raw, idx(0x803, &[2, 2, 3], &[1; 12])).unwrap();
        assert_eq!(read_idx_images(&raw).unwrap(), (2, 2, 3, vec![1; 12]));

        let gz = dir.path().join("labels.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&idx(0x801, &[3], &[7, 8, 9])).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_idx_labels(&gz).unwrap(), vec![7, 8, 9]);

        let err = read_idx_images(&gz).unwrap_err().to_string();
        assert!(
            err.contains("labels.gz") && err.contains("0x00000803"),
            "{err}"
        );
        let short = dir.path().join("short");
        std::fs::write(&short, idx(0x803, &[2, 2, 3], &[1; 5])).unwrap();
        let err = read_idx_images(&short).unwrap_err().to_string();
        assert!(
            err.contains("short") && err.contains("2×2×3 = 12") && err.contains("holds 5"),
            "{err}"
        );
    }
}
