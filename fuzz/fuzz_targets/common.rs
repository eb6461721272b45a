//! What the targets share: a per-process scratch file, since the readers take paths.

use std::path::PathBuf;

/// `name` in a folder of this process's own under the system's temporary folder (a RAM disk,
/// /dev/shm, when there is one), holding `data`.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("convlearn-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}
