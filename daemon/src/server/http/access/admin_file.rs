//! `DATA_DIR/admin.token`: the admin token of a daemon listening on loopback, written on first start.
//!
//! Whoever may read the data directory already holds every event and the catalog, so the file's readers are the
//! admins: no config needed for the embedded default, and the token is not in any config or command line. Created
//! once (create-new, mode 0600, fsynced with its directory), then read at each start; delete it to have a new
//! one made.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::Rng;

use crate::server::config::Secret;

/// The file's name in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The data directory's admin token, written first if there is none (64 hex characters from the OS's random
/// source).
pub fn admin_token(data_dir: &Path) -> anyhow::Result<Secret> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let make = || -> std::io::Result<()> {
        let bytes: [u8; 32] = rand::rng().random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    match make() {
        Ok(()) => tracing::info!(path = %path.display(), "wrote a new admin token"),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => anyhow::bail!("cannot write the admin token {}: {e}", path.display()),
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read the admin token {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < 16 {
        anyhow::bail!(
            "the admin token {} is shorter than 16 characters; delete the file to have a new one written",
            path.display()
        );
    }
    Ok(Secret::new(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn written_once_private_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = admin_token(dir.path()).unwrap();
        assert_eq!(first.expose().len(), 64);
        let mode = std::fs::metadata(dir.path().join(ADMIN_TOKEN_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(admin_token(dir.path()).unwrap(), first, "read back, not replaced");
        std::fs::write(dir.path().join(ADMIN_TOKEN_FILE), "my-own-admin-token-1234\n").unwrap();
        assert_eq!(admin_token(dir.path()).unwrap().expose(), "my-own-admin-token-1234");
        std::fs::write(dir.path().join(ADMIN_TOKEN_FILE), "short\n").unwrap();
        assert!(admin_token(dir.path()).unwrap_err().to_string().contains("delete the file"));
    }
}
