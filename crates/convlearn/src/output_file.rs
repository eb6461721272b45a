//! Writing outputs so that nothing is lost: atomically and durably (a temporary file beside the
//! target, `fsync`, rename, `fsync` of the folder), through symbolic links and into device nodes
//! rather than over them, never over an input or another output of the same command.
//!
//! A temporary file is `<name>.tmp-<pid>`; one left behind by a process that no longer runs (a kill,
//! a full disk) is removed the next time the same output is written, and is never read.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How many symbolic links an output path may go through before it is refused as a loop.
const LINKS_MAX: usize = 40;

/// `path` with `.tmp-<pid>` appended: where an atomic write goes before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes the output `path` by calling `write` with a path to write instead, then putting that in
/// place: a reader of `path` sees the old file or the new one, whole, and after a crash the new
/// one is on disk. A symbolic link is followed (the file it points to is replaced, the link
/// stays); a device node or FIFO (`/dev/null`, `/dev/stdout`) is written into, never replaced; a
/// folder is an error.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let target = resolve_links(path)?;
    let existing = std::fs::metadata(&target);
    match &existing {
        Ok(m) if m.is_dir() => {
            return Err(Error::format(
                path,
                "is a folder: give the output a file name",
            ));
        }
        Ok(m) if !m.is_file() => return write_into_special(path, &target, write),
        _ => {}
    }
    let dir = match target.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            dir.to_path_buf()
        }
        None => PathBuf::from("."),
    };
    remove_stale_temps(&target);
    let tmp = temp_path(&target);
    let result = write(&tmp).and_then(|()| {
        // A file that is replaced keeps its permissions.
        if let Ok(m) = &existing {
            std::fs::set_permissions(&tmp, m.permissions()).map_err(|e| Error::io(&tmp, e))?;
        }
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable once the folder's entry is; a folder that cannot be opened for
    // syncing (some network file systems) still has the file.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// [`write_atomically`] for bytes already in memory.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// The file `path` names once its symbolic links are followed (the last link's target when that
/// does not exist yet, so the write creates it).
fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..LINKS_MAX {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&current).map_err(|e| Error::io(&current, e))?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::format(
        path,
        format!("goes through more than {LINKS_MAX} symbolic links (a loop?)"),
    ))
}

/// A device node, FIFO or socket: the output is made in the system's temporary folder, then
/// copied into it.
fn write_into_special(
    path: &Path,
    target: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let tmp = temp_path(&std::env::temp_dir().join(format!("convlearn-{name}")));
    let result = write(&tmp).and_then(|()| {
        let mut from = File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut to = File::options()
            .write(true)
            .open(target)
            .map_err(|e| Error::io(path, e))?;
        std::io::copy(&mut from, &mut to)
            .map(drop)
            .map_err(|e| Error::io(path, e))
    });
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Removes `<name>.tmp-<pid>` files beside `target` whose process is gone (Linux: no
/// `/proc/<pid>`; elsewhere nothing is removed, since liveness cannot be told).
fn remove_stale_temps(target: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.to_os_string();
    prefix.push(".tmp-");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if pid.parse::<u32>().is_ok() && !alive && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// One file a command reads or writes, with the flag (or argument) that named it: `("--save",
/// path)`, `("IMAGE", path)`.
pub type Named<'a> = (&'a str, &'a Path);

/// Refuses outputs that are the same file as each other or as an input (after following links and
/// `..`), before any work starts: the second write would destroy the first, or the input.
pub fn check_outputs(inputs: &[Named], outputs: &[Named]) -> Result<()> {
    let key = |p: &Path| identity(p);
    for (i, &(out_flag, out)) in outputs.iter().enumerate() {
        let k = key(out);
        for &(in_flag, input) in inputs {
            if key(input) == k {
                return Err(Error::Invalid(format!(
                    "{} '{}' is the same file as the input {} '{}': writing it would destroy the \
                     input; choose another output path",
                    out_flag,
                    out.display(),
                    in_flag,
                    input.display()
                )));
            }
        }
        if let Some(&(other_flag, _)) = outputs[..i].iter().find(|(_, p)| key(p) == k) {
            return Err(Error::Invalid(format!(
                "{other_flag} and {out_flag} both name '{}': one output would replace the other; \
                 give each its own path",
                out.display()
            )));
        }
    }
    Ok(())
}

/// What tells two paths apart: the canonical path when the file exists (links and `..` resolved),
/// else the canonical folder joined with the name.
fn identity(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .join(name),
        _ => absolute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named<'a>(flag: &'a str, path: &'a Path) -> Named<'a> {
        (flag, path)
    }

    #[test]
    fn replaces_a_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.txt");
        write_bytes(&out, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        write_bytes(&out, b"new").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o640,
                "the replaced file's permissions were not kept"
            );
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.txt");
        write_bytes(&out, b"old").unwrap();
        let err = write_atomically(&out, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Invalid("disk full".into()))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn writes_through_a_link_and_into_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        write_bytes(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");

        write_bytes(Path::new("/dev/null"), b"gone").unwrap();
        let null = std::fs::metadata("/dev/null").unwrap();
        assert!(!null.is_file(), "/dev/null was replaced by a regular file");

        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink("loop", &looped).unwrap();
        let message = write_bytes(&looped, b"x").unwrap_err().to_string();
        assert!(message.contains("symbolic links"), "{message}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("model.safetensors");
        // pid_max is at most 2^22 on Linux, so this process cannot exist.
        let stale = dir.path().join("model.safetensors.tmp-4194305");
        let other = dir.path().join("model.safetensors.tmp-notapid");
        std::fs::write(&stale, b"torn").unwrap();
        std::fs::write(&other, b"kept").unwrap();
        write_bytes(&out, b"whole").unwrap();
        assert!(!stale.exists());
        assert!(other.exists());
    }

    #[test]
    fn outputs_may_not_be_inputs_or_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.png");
        std::fs::write(&input, b"picture").unwrap();
        let same = dir.path().join("sub/../in.png");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let message = check_outputs(&[named("IMAGE", &input)], &[named("-o", &same)])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("-o") && message.contains("IMAGE"),
            "{message}"
        );

        let a = dir.path().join("x.png");
        let message = check_outputs(&[], &[named("--save", &a), named("--plot", &a)])
            .unwrap_err()
            .to_string();
        assert!(message.contains("--save and --plot"), "{message}");

        let b = dir.path().join("y.png");
        check_outputs(
            &[named("IMAGE", &input)],
            &[named("--save", &a), named("--plot", &b)],
        )
        .unwrap();
    }
}
