//! PyTorch checkpoints (`torch.save`'s zip archive, or the legacy file of concatenated pickles),
//! checked before anything is read: every Python global the pickle names must be one of PyTorch's
//! tensor-rebuilding functions ([`pickle_scan::allowed`]), zip entries must not overlap or inflate
//! far beyond the file, and the tensors kept must fit a bound set by the file's size. The tensors
//! themselves are then read by burn's `pytorch-reader`, which never executes anything.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::pickle_scan::{self, Global};
use super::{HostTensor, Scalar};
use crate::error::{Error, Result};

/// The largest pickle (the checkpoint's structure, not its tensor data) that is read.
const PICKLE_MAX: u64 = 64 << 20;

/// How many times its own size a file may expand to, in tensors and in inflated zip entries:
/// `torch.save` stores tensor data uncompressed, so an honest file's tensors add up to less than
/// the file, and twice covers tensors that share a storage.
const EXPANSION_MAX: u64 = 2;

/// Bytes any file may expand to regardless of its size (small files, small tensors).
const EXPANSION_SLACK: u64 = 1 << 20;

/// The most bytes a file of `file_len` bytes may expand to ([`EXPANSION_MAX`] times it, plus
/// [`EXPANSION_SLACK`]).
fn expansion_budget(file_len: u64) -> u64 {
    file_len
        .saturating_mul(EXPANSION_MAX)
        .saturating_add(EXPANSION_SLACK)
}

/// The first pickle of a legacy (pre-1.6) `torch.save` file: protocol 2, the magic number
/// `0x1950a86a20f9469cfc6c` as a LONG1, STOP.
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// A legacy file's pickles before its storages: magic, protocol version, system info, the object,
/// the storage keys.
const LEGACY_PICKLES: usize = 5;

/// Reads the tensors of the checkpoint at `path` (a zip archive when `zip` is set, else a legacy
/// or plain pickle). A dict holding the state dict under `state_dict` or `model` (with an
/// optimiser's state, an epoch…) gives that state dict.
pub(super) fn read(path: &Path, zip: bool) -> Result<BTreeMap<String, HostTensor>> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if zip {
        check_zip(path, file_len)?
    } else {
        check_pickles(path)?
    }

    let reader = pytorch_reader::PytorchReader::new(path)
        .map_err(|e| Error::format(path, format!("not a readable PyTorch checkpoint: {e}")))?;
    let tensors = state_dict(reader.into_tensors());
    let budget = expansion_budget(file_len);
    let total = tensors
        .values()
        .fold(0u64, |sum, t| sum.saturating_add(t.byte_len() as u64));
    if total > budget {
        return Err(Error::format(
            path,
            format!(
                "its tensors would take {total} bytes, more than {EXPANSION_MAX} × the file's \
                 {file_len}: views repeat their storage (a stride of 0, overlapping views) or \
                 the file lies about its sizes; refused before reading"
            ),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, t) in tensors {
        let dtype = Scalar::named(&format!("{:?}", t.dtype())).ok_or_else(|| {
            Error::format(
                path,
                format!("tensor '{name}' has unsupported dtype {:?}", t.dtype()),
            )
        })?;
        let bytes = t
            .read()
            .map_err(|e| Error::format(path, format!("cannot read tensor '{name}': {e}")))?;
        out.insert(
            name,
            HostTensor {
                shape: t.shape().to_vec(),
                values: dtype.decode(&bytes),
            },
        );
    }
    Ok(out)
}

/// The tensors of a state dict: those under `state_dict.` or else `model.` with that prefix
/// removed when there are any (a training checkpoint's layout), else all of them.
fn state_dict(
    tensors: std::collections::HashMap<String, pytorch_reader::Tensor>,
) -> BTreeMap<String, pytorch_reader::Tensor> {
    for prefix in ["state_dict.", "model."] {
        if tensors.keys().any(|k| k.starts_with(prefix)) {
            return tensors
                .into_iter()
                .filter_map(|(k, t)| Some((k.strip_prefix(prefix)?.to_string(), t)))
                .collect();
        }
    }
    tensors.into_iter().collect()
}

/// Checks a `torch.save` zip archive: its entries neither overlap nor inflate beyond the bound,
/// and its pickle names only allowed globals.
fn check_zip(path: &Path, file_len: u64) -> Result<()> {
    let bad = |m: String| Error::format(path, m);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
    let budget = expansion_budget(file_len);
    let mut spans = Vec::with_capacity(archive.len());
    let mut pickle_entry: Option<(usize, String)> = None;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| bad(format!("zip entry {i} is unreadable: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(format!("zip entry {i} has an unreadable name: {e}")))?
            .to_string();
        let (start, packed, size) = (entry.header_start(), entry.compressed_size(), entry.size());
        if start.saturating_add(packed) > file_len {
            return Err(bad(format!(
                "zip entry '{name}' claims {packed} bytes at offset {start}, past the file's end ({file_len})"
            )));
        }
        if size > budget && entry.compression() != zip::CompressionMethod::Stored {
            return Err(bad(format!(
                "zip entry '{name}' inflates {packed} bytes to {size}, more than {EXPANSION_MAX} × \
                 the file's size: refused (torch.save stores tensors uncompressed)"
            )));
        }
        spans.push((start, start.saturating_add(packed), name.clone()));
        let is_pickle = name
            .strip_suffix("data.pkl")
            .is_some_and(|root| root.is_empty() || root.ends_with('/'));
        if is_pickle
            && pickle_entry
                .as_ref()
                .is_none_or(|(_, n)| name.len() < n.len())
        {
            pickle_entry = Some((i, name));
        }
    }
    spans.sort();
    for pair in spans.windows(2) {
        // Each entry's local header and data end before the next entry's header starts.
        if pair[0].1 > pair[1].0 {
            return Err(bad(format!(
                "zip entries '{}' and '{}' overlap: refused (a zip bomb shares its data between entries)",
                pair[0].2, pair[1].2
            )));
        }
    }
    let (index, name) = pickle_entry
        .ok_or_else(|| bad("a zip archive without data.pkl is not a PyTorch checkpoint".into()))?;
    let entry = archive
        .by_index(index)
        .map_err(|e| bad(format!("zip entry '{name}' is unreadable: {e}")))?;
    let mut pickle = Vec::new();
    entry
        .take(PICKLE_MAX + 1)
        .read_to_end(&mut pickle)
        .map_err(|e| bad(format!("zip entry '{name}' is unreadable: {e}")))?;
    if pickle.len() as u64 > PICKLE_MAX {
        return Err(bad(format!("'{name}' is larger than {PICKLE_MAX} bytes")));
    }
    let (globals, end) = pickle_scan::scan(&pickle);
    refuse_unknown_globals(path, &globals)?;
    end.map_err(|e| bad(format!("'{name}': {e}")))?;
    Ok(())
}

/// Checks that the pickles of a legacy `torch.save` file (or one plain pickle) name only allowed
/// globals and are well formed.
fn check_pickles(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::new();
    file.take(PICKLE_MAX)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    let pickles = if head.starts_with(&LEGACY_MAGIC) {
        LEGACY_PICKLES
    } else {
        1
    };
    let mut at = 0;
    for i in 0..pickles {
        let (found, end) = pickle_scan::scan(&head[at..]);
        refuse_unknown_globals(path, &found)?;
        at += end.map_err(|e| {
            Error::format(
                path,
                format!("pickle {} of {pickles} (at byte {at}): {e}", i + 1),
            )
        })?;
    }
    Ok(())
}

fn refuse_unknown_globals(path: &Path, globals: &[Global]) -> Result<()> {
    let mut refused: Vec<String> = globals
        .iter()
        .filter(|g| !pickle_scan::allowed(g))
        .map(ToString::to_string)
        .collect();
    refused.sort();
    refused.dedup();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::format(
        path,
        format!(
            "refused: its pickle calls the Python global {}; a weights file needs only PyTorch's \
             tensor-rebuilding functions, so nothing was loaded and nothing ran",
            refused
                .iter()
                .map(|g| format!("'{g}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}
