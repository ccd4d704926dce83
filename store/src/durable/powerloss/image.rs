//! Copies of the catalog's directory, taken when the power goes off and put back by the crash.

use std::io;
use std::path::{Path, PathBuf};

/// A directory's contents: relative path and the file's bytes (`None` for a directory).
pub(super) type Image = Vec<(PathBuf, Option<Vec<u8>>)>;

/// The files of `dir`, read now (an absent directory is an empty image).
pub(super) fn image_of(dir: &Path) -> io::Result<Image> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = match std::fs::read_dir(dir.join(&rel)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound && rel.as_os_str().is_empty() => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let sub = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                out.push((sub.clone(), None));
                stack.push(sub);
            } else {
                out.push((sub, Some(std::fs::read(entry.path())?)));
            }
        }
    }
    Ok(out)
}

/// Replaces `dir` with `image`.
pub(super) fn restore_dir(dir: &Path, image: &Image) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    for (rel, contents) in image {
        match contents {
            None => std::fs::create_dir_all(dir.join(rel))?,
            Some(bytes) => {
                if let Some(parent) = dir.join(rel).parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(dir.join(rel), bytes)?;
            }
        }
    }
    Ok(())
}
