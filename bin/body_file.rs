//! `--body-file`: the fixed body read from a file. Each worker reads it as
//! it starts (so a `reload` serves what the file holds then); the master
//! only checks that it can, and holds none of it: it answers no request.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The body this process serves from `path`: the file's bytes in a worker,
/// nothing in the master, once it has checked the file is a regular file it
/// may read. The error names the file and what failed.
pub fn for_this_process(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |what: &str, e: std::io::Error| format!("--body-file {}: cannot {what}: {e}", path.display());
    let mut file = File::open(path).map_err(|e| fail("open it", e))?;
    let meta = file.metadata().map_err(|e| fail("read its metadata", e))?;
    if !meta.is_file() {
        return Err(format!("--body-file {}: not a regular file", path.display()));
    }
    if crate::is_primary() {
        return Ok(Vec::new());
    }
    let len = usize::try_from(meta.len()).map_err(|_| format!("--body-file {}: too large", path.display()))?;
    let mut body = Vec::new();
    // A file larger than memory is an error, not an abort.
    body.try_reserve_exact(len).map_err(|e| format!("--body-file {}: cannot hold {len} bytes: {e}", path.display()))?;
    file.read_to_end(&mut body).map_err(|e| fail("read it", e))?;
    Ok(body)
}
