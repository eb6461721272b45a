//! MNIST's IDX files, gzip-compressed or raw, read with errors that name the file and the expectation.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest payload an IDX file may declare (MNIST's training images are 47 MB).
const PAYLOAD_MAX: usize = 2 << 30;

/// Reads an IDX file of `dims` dimensions, raw or gzip-compressed: its shape and exactly the
/// payload its header promises. The stream is read as far as that and no further, so a small
/// gzip file cannot inflate beyond what the header declares; data after the payload is an error.
fn read_idx(path: &Path, dims: usize, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut raw = std::io::BufReader::new(file);
    let gzip = {
        use std::io::BufRead;
        raw.fill_buf()
            .map_err(|e| Error::io(path, e))?
            .starts_with(&[0x1f, 0x8b])
    };
    let mut stream: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let damaged = |e: std::io::Error| {
        if gzip {
            Error::format(path, format!("gzip stream is damaged or truncated: {e}"))
        } else {
            Error::io(path, e)
        }
    };
    let header_len = 4 + 4 * dims;
    let mut header = Vec::with_capacity(header_len);
    stream
        .by_ref()
        .take(header_len as u64)
        .read_to_end(&mut header)
        .map_err(damaged)?;
    let expected = 0x0800 + dims as u32;
    if header.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "file is {} bytes, too short for an IDX header",
                header.len()
            ),
        ));
    }
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic != expected {
        return Err(Error::format(
            path,
            format!(
                "wrong magic number 0x{magic:08x}: expected 0x{expected:08x} (IDX {what}: unsigned bytes, {dims} dimensions)"
            ),
        ));
    }
    if header.len() < header_len {
        return Err(Error::format(
            path,
            format!(
                "truncated header: expected {header_len} bytes, file has {}",
                header.len()
            ),
        ));
    }
    let shape: Vec<usize> = header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let dims_text = shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("×");
    let need = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= PAYLOAD_MAX)
        .ok_or_else(|| {
            Error::format(
                path,
                format!("the header promises {dims_text} bytes of {what}, more than {PAYLOAD_MAX}"),
            )
        })?;
    let mut payload = Vec::new();
    stream
        .by_ref()
        .take(need as u64)
        .read_to_end(&mut payload)
        .map_err(damaged)?;
    if payload.len() < need {
        return Err(Error::format(
            path,
            format!(
                "truncated: the header promises {dims_text} = {need} bytes of {what}, the file holds {}",
                payload.len()
            ),
        ));
    }
    let mut extra = [0u8; 1];
    if stream.read(&mut extra).map_err(damaged)? > 0 {
        return Err(Error::format(
            path,
            format!(
                "has data after the {dims_text} = {need} bytes of {what} its header promises: \
                 a damaged or mislabelled file"
            ),
        ));
    }
    Ok((shape, payload))
}

/// Reads an IDX3 image file: returns (count, rows, cols, pixels).
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (shape, payload) = read_idx(path, 3, "images")?;
    Ok((shape[0], shape[1], shape[2], payload))
}

/// Reads an IDX1 label file.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let (_, payload) = read_idx(path, 1, "labels")?;
    Ok(payload)
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

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
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

        let long = dir.path().join("long");
        std::fs::write(&long, idx(0x801, &[3], &[1; 4])).unwrap();
        let err = read_idx_labels(&long).unwrap_err().to_string();
        assert!(err.contains("has data after the 3 = 3 bytes"), "{err}");

        // A few bytes of gzip whose header promises 4 GB of zeros (and holds 1 MB of them).
        let bomb = dir.path().join("bomb.gz");
        std::fs::write(&bomb, gzip(&idx(0x803, &[60000, 60000, 1], &[0; 1 << 20]))).unwrap();
        let err = read_idx_images(&bomb).unwrap_err().to_string();
        assert!(err.contains("more than 2147483648"), "{err}");
        let lying = dir.path().join("lying.gz");
        std::fs::write(&lying, gzip(&idx(0x803, &[20000, 200, 200], &[0; 1 << 20]))).unwrap();
        let err = read_idx_images(&lying).unwrap_err().to_string();
        assert!(err.contains("holds 1048576"), "{err}");
    }
}
