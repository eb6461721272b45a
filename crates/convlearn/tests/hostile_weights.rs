//! Weights files from strangers: each hostile file is built here byte by byte (no PyTorch needed),
//! and each must be refused with a message naming what is wrong — fast, without running anything
//! and without allocating what the file claims. Honest files built the same way must load.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convlearn::tensor_file::TensorFile;

// ---- a tiny pickle writer (protocol 2 opcodes, plus protocol 4's where a test needs them) ----

fn text(s: &str) -> Vec<u8> {
    let mut b = vec![b'X'];
    b.extend((s.len() as u32).to_le_bytes());
    b.extend(s.as_bytes());
    b
}

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

fn int(v: u8) -> Vec<u8> {
    vec![b'K', v]
}

fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![b'('];
    items.iter().for_each(|i| b.extend(i));
    b.push(b't');
    b
}

/// `torch._utils._rebuild_tensor_v2(storage '<key>' of `numel` floats, offset, shape, stride, …)`.
fn tensor(key: &str, numel: u8, shape: &[u8], stride: &[u8]) -> Vec<u8> {
    let mut b = global("torch._utils", "_rebuild_tensor_v2");
    let storage = tuple(&[
        text("storage"),
        global("torch", "FloatStorage"),
        text(key),
        text("cpu"),
        int(numel),
    ]);
    let mut pid = storage;
    pid.push(b'Q'); // BINPERSID
    let dims = |d: &[u8]| tuple(&d.iter().map(|&v| int(v)).collect::<Vec<_>>());
    let mut ordered = global("collections", "OrderedDict");
    ordered.extend([b')', b'R']);
    b.extend(tuple(&[
        pid,
        int(0),
        dims(shape),
        dims(stride),
        vec![0x89],
        ordered,
    ]));
    b.push(b'R');
    b
}

/// A dict pickle `{name: value, …}` (protocol 2), STOP included.
fn dict(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![0x80, 0x02, b'}'];
    for (k, v) in entries {
        b.extend(text(k));
        b.extend(v);
        b.push(b's');
    }
    b.push(b'.');
    b
}

/// `os.system(command)` as the whole pickle.
fn system_call(module: &str, name: &str, command: &str) -> Vec<u8> {
    let mut b = vec![0x80, 0x02];
    b.extend(global(module, name));
    b.extend(tuple(&[text(command)]));
    b.extend([b'R', b'.']);
    b
}

/// A `torch.save` zip archive holding `pickle` and the storages `(key, bytes)`.
fn torch_zip(
    dir: &Path,
    name: &str,
    pickle: &[u8],
    storages: &[(&str, Vec<u8>)],
    deflate: bool,
) -> PathBuf {
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let packed = if deflate {
        stored.compression_method(zip::CompressionMethod::Deflated)
    } else {
        stored
    };
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    for (key, bytes) in storages {
        zip.start_file(format!("archive/data/{key}"), packed)
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.start_file("archive/version", stored).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
    path
}

fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Reads `path` and returns its error text, asserting that it failed within a second or two.
fn refusal(path: &Path) -> String {
    let start = Instant::now();
    let result = TensorFile::read(path);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{} took {:?}",
        path.display(),
        start.elapsed()
    );
    match result {
        Ok(f) => panic!(
            "{} was accepted with tensors {:?}",
            path.display(),
            f.tensors.keys()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_honest_zip_checkpoint_loads() {
    let dir = tempfile::tempdir().unwrap();
    let pickle = dict(&[("w", tensor("0", 4, &[2, 2], &[2, 1]))]);
    let path = torch_zip(
        dir.path(),
        "ok.pth",
        &pickle,
        &[("0", floats(&[1.0, 2.0, 3.0, 4.0]))],
        false,
    );
    let f = TensorFile::read(&path).unwrap();
    let w = f.get("w").unwrap();
    assert_eq!(w.shape, vec![2, 2]);
    assert_eq!(w.values, vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn a_training_checkpoint_gives_its_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["state_dict", "model"] {
        // {key: {'w': tensor}, 'opt': {'exp_avg': tensor}, 'epoch': 3}
        let mut inner = vec![b'}'];
        inner.extend(text("w"));
        inner.extend(tensor("0", 4, &[4], &[1]));
        inner.push(b's');
        let mut opt = vec![b'}'];
        opt.extend(text("exp_avg"));
        opt.extend(tensor("1", 4, &[4], &[1]));
        opt.push(b's');
        let pickle = dict(&[(key, inner), ("opt", opt), ("epoch", int(3))]);
        let storages = [("0", floats(&[1.0; 4])), ("1", floats(&[2.0; 4]))];
        let path = torch_zip(dir.path(), &format!("{key}.pth"), &pickle, &storages, false);
        let f = TensorFile::read(&path).unwrap();
        assert_eq!(f.tensors.keys().collect::<Vec<_>>(), vec!["w"], "{key}");
        assert_eq!(f.get("w").unwrap().values, vec![1.0; 4]);
    }
}

#[test]
fn pickles_that_call_code_are_refused_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("MARKER");
    let command = format!("touch {}", marker.display());
    let mut cases: Vec<(&str, PathBuf, &str)> = Vec::new();

    // GLOBAL + REDUCE in a zip archive.
    let p = torch_zip(
        dir.path(),
        "os.pth",
        &system_call("os", "system", &command),
        &[],
        false,
    );
    cases.push(("os.system in a zip", p, "'os.system'"));
    // posix.system as a bare pickle.
    let p = write(
        dir.path(),
        "posix.pth",
        &system_call("posix", "system", &command),
    );
    cases.push(("posix.system, bare pickle", p, "'posix.system'"));
    // A legacy file: the magic pickle, then a protocol pickle calling builtins.exec.
    let mut legacy = vec![
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
    ];
    legacy.extend(system_call("builtins", "exec", "import os"));
    let p = write(dir.path(), "legacy.pt", &legacy);
    cases.push(("builtins.exec, legacy second pickle", p, "'builtins.exec'"));
    // Protocol 4: STACK_GLOBAL on memoised names fetched back with BINGET.
    let mut stack = vec![0x80, 0x04, 0x8c, 10];
    stack.extend(b"subprocess");
    stack.extend([0x94, 0x8c, 5]);
    stack.extend(b"Popen");
    stack.extend([0x94, b'0', b'0', b'h', 0, b'h', 1, 0x93]);
    stack.extend(tuple(&[text(&command)]));
    stack.extend([b'R', b'.']);
    let p = torch_zip(dir.path(), "stack.pth", &stack, &[], false);
    cases.push(("subprocess.Popen by STACK_GLOBAL", p, "'subprocess.Popen'"));
    // INST names its class inline.
    let mut inst = vec![0x80, 0x02, b'('];
    inst.extend(text(&command));
    inst.extend(b"ios\nsystem\n.");
    let p = write(dir.path(), "inst.pth", &inst);
    cases.push(("os.system by INST", p, "'os.system'"));
    // A payload hidden inside an honest-looking state dict.
    let pickle = dict(&[
        ("w", tensor("0", 4, &[4], &[1])),
        ("x", {
            let mut b = global("os", "system");
            b.extend(tuple(&[text(&command)]));
            b.push(b'R');
            b
        }),
    ]);
    let p = torch_zip(
        dir.path(),
        "hidden.pth",
        &pickle,
        &[("0", floats(&[0.0; 4]))],
        false,
    );
    cases.push(("os.system beside a tensor", p, "'os.system'"));

    for (what, path, global) in cases {
        let message = refusal(&path);
        assert!(message.contains(global), "{what}: {message}");
        assert!(message.contains("nothing ran"), "{what}: {message}");
        assert!(!marker.exists(), "{what}: the payload ran");
    }
}

#[test]
fn pickles_that_lie_about_lengths_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // BINBYTES8 claiming 2^62 bytes.
    let mut huge = vec![0x80, 0x04, 0x8e];
    huge.extend((1u64 << 62).to_le_bytes());
    huge.extend(b"abc.");
    let message = refusal(&torch_zip(dir.path(), "bytes8.pth", &huge, &[], false));
    assert!(
        message.contains("claims 4611686018427387904 bytes"),
        "{message}"
    );
    // LONG_BINGET of an entry never stored.
    let get = [0x80, 0x02, b'j', 0xff, 0xff, 0xff, 0x7f, b'.'];
    let message = refusal(&write(dir.path(), "get.pth", &get));
    assert!(message.contains("never stored"), "{message}");
    // A pickle that never stops.
    let message = refusal(&write(
        dir.path(),
        "open.pth",
        &[0x80, 0x02, b']', b']', b']'],
    ));
    assert!(message.contains("remain"), "{message}");
    // A memo bomb: a list fetched from the memo four million times.
    let mut bomb = vec![0x80, 0x02, b']', b'q', 0];
    bomb.extend(std::iter::repeat_n([b'h', 0], 1 << 22).flatten());
    bomb.push(b'.');
    let message = refusal(&torch_zip(dir.path(), "bomb.pth", &bomb, &[], false));
    assert!(message.contains("stack grows past"), "{message}");
}

#[test]
fn tensors_that_claim_more_than_the_file_holds_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // Stride 0: a 1-float storage viewed as 30 000 × 30 000 (3.6 GB).
    let mut b = global("torch._utils", "_rebuild_tensor_v2");
    let mut pid = tuple(&[
        text("storage"),
        global("torch", "FloatStorage"),
        text("0"),
        text("cpu"),
        int(1),
    ]);
    pid.push(b'Q');
    let big = |v: u16| {
        let mut m = vec![b'M'];
        m.extend(v.to_le_bytes());
        m
    };
    let mut ordered = global("collections", "OrderedDict");
    ordered.extend([b')', b'R']);
    b.extend(tuple(&[
        pid,
        int(0),
        tuple(&[big(30000), big(30000)]),
        tuple(&[int(0), int(0)]),
        vec![0x89],
        ordered,
    ]));
    b.push(b'R');
    let path = torch_zip(
        dir.path(),
        "stride0.pth",
        &dict(&[("w", b)]),
        &[("0", floats(&[1.0]))],
        false,
    );
    let message = refusal(&path);
    assert!(message.contains("3600000000 bytes"), "{message}");

    // Forty tensors sharing one deflated storage of 64 MiB: the entry inflates far beyond the file.
    let entries: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("t{i}"), tensor("0", 4, &[4], &[1])))
        .collect();
    let entries: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let path = torch_zip(
        dir.path(),
        "shared.pth",
        &dict(&entries),
        &[("0", vec![0u8; 64 << 20])],
        true,
    );
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
    let message = refusal(&path);
    assert!(message.contains("inflates"), "{message}");

    // A storage shorter than the pickle declares.
    let pickle = dict(&[("w", tensor("0", 200, &[200], &[1]))]);
    let path = torch_zip(
        dir.path(),
        "short.pth",
        &pickle,
        &[("0", floats(&[1.0; 4]))],
        false,
    );
    let message = refusal(&path);
    assert!(message.contains("'w'"), "{message}");
}

#[test]
fn file_kinds_are_told_by_their_full_magic() {
    let dir = tempfile::tempdir().unwrap();
    // A safetensors header of 384 bytes: its length's first byte is 0x80, a pickle's first byte.
    let mut header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.to_vec();
    header.resize(384, b' ');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    assert_eq!(bytes[0], 0x80);
    bytes.extend(&header);
    bytes.extend(floats(&[5.0, 6.0]));
    let f = TensorFile::read(&write(dir.path(), "w.safetensors", &bytes)).unwrap();
    assert_eq!(f.get("w").unwrap().values, vec![5.0, 6.0]);

    let message = refusal(&write(
        dir.path(),
        "text.pth",
        b"hello, these are not weights\n",
    ));
    assert!(message.contains("is not a weights file"), "{message}");
    let message = refusal(&write(dir.path(), "empty.pth", b""));
    assert!(
        message.contains("is not a weights file (0 bytes)"),
        "{message}"
    );
    // A header length past the end of the file.
    let mut cut = bytes.clone();
    cut.truncate(100);
    let message = refusal(&write(dir.path(), "cut.safetensors", &cut));
    assert!(
        message.contains("header claims 384 bytes, but the file has 100"),
        "{message}"
    );
    // Offsets past the data, and garbage JSON.
    let mut lying = bytes.clone();
    lying.truncate(bytes.len() - 4);
    let message = refusal(&write(dir.path(), "short.safetensors", &lying));
    assert!(message.contains("safetensors"), "{message}");
    let mut garbage = (10u64).to_le_bytes().to_vec();
    garbage.extend(b"{not json}");
    let message = refusal(&write(dir.path(), "garbage.safetensors", &garbage));
    assert!(
        message.contains("not a valid safetensors file"),
        "{message}"
    );
}
