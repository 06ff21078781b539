//! Which module files psmd may load: only those the policy lists, compared
//! after resolving symbolic links, and only files no one but root or the
//! user running psmd can replace. Loading a module runs its code inside
//! psmd, next to every key; PSM 1.x let any application pick one.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use psm::{Code, Error};

/// Group- and world-write permission bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
/// The sticky bit: in a directory, only an entry's owner may replace it.
const STICKY: u32 = 0o1000;

fn refused(msg: String) -> Error {
    Error::new(Code::PSM_ERR_POLICY, msg)
}

/// Returns the canonical path of `requested` if the policy's `allowed`
/// list names the same file and that file is safe to load.
pub fn check(requested: &Path, allowed: &[PathBuf]) -> Result<PathBuf, Error> {
    if !requested.is_absolute() {
        return Err(Error::new(
            Code::PSM_ERR_INVALID_ARGUMENT,
            format!(
                "PKCS#11 module path {} is relative; the policy names modules by absolute path",
                requested.display()
            ),
        ));
    }
    let canonical = requested.canonicalize().map_err(|e| {
        Error::new(Code::PSM_ERR_NOT_FOUND, format!("PKCS#11 module {}: {e}", requested.display()))
    })?;
    // Compared as files, not strings: a symbolic link to a listed module
    // is that module, and a listed link that now points elsewhere is not.
    let listed = allowed.iter().any(|a| a.is_absolute() && a.canonicalize().is_ok_and(|a| a == canonical));
    if !listed {
        return Err(refused(format!(
            "PKCS#11 module {} is not in the policy's pkcs11.modules list; \
             only modules the administrator lists may be loaded",
            requested.display()
        )));
    }
    check_not_replaceable(&canonical)?;
    Ok(canonical)
}

/// The file and every directory above it must be owned by root or by us
/// and not writable by anyone else (a sticky directory such as /tmp is
/// fine: others cannot replace what they do not own).
fn check_not_replaceable(canonical: &Path) -> Result<(), Error> {
    let me = nix::unistd::geteuid().as_raw();
    let meta = std::fs::metadata(canonical)
        .map_err(|e| Error::new(Code::PSM_ERR_IO, format!("PKCS#11 module {}: {e}", canonical.display())))?;
    if !meta.is_file() {
        return Err(refused(format!("PKCS#11 module {} is not a regular file", canonical.display())));
    }
    check_owner_and_mode(canonical, &meta, me, "module file")?;
    for dir in canonical.ancestors().skip(1) {
        let meta = std::fs::metadata(dir)
            .map_err(|e| Error::new(Code::PSM_ERR_IO, format!("directory {}: {e}", dir.display())))?;
        if meta.mode() & STICKY == 0 {
            check_owner_and_mode(dir, &meta, me, "directory")?;
        }
    }
    Ok(())
}

fn check_owner_and_mode(path: &Path, meta: &std::fs::Metadata, me: u32, what: &str) -> Result<(), Error> {
    if meta.uid() != 0 && meta.uid() != me {
        return Err(refused(format!(
            "PKCS#11 {what} {} is owned by uid {}; psmd loads modules only from files owned by root or by itself",
            path.display(),
            meta.uid()
        )));
    }
    if meta.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(refused(format!(
            "PKCS#11 {what} {} is mode {:04o}: writable by its group or by others, who could replace the module; \
             refused (chmod go-w)",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn module_in(dir: &Path, mode: u32) -> PathBuf {
        let p = dir.join("libtoken.so");
        std::fs::write(&p, b"not really a module").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn private_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn a_listed_module_is_accepted_by_its_canonical_path() {
        let d = private_dir();
        let m = module_in(d.path(), 0o644);
        let link = d.path().join("link.so");
        std::os::unix::fs::symlink(&m, &link).unwrap();
        let canonical = m.canonicalize().unwrap();
        assert_eq!(check(&m, std::slice::from_ref(&m)).unwrap(), canonical);
        // Asked by a link, listed by the file, or the other way round.
        assert_eq!(check(&link, std::slice::from_ref(&m)).unwrap(), canonical);
        assert_eq!(check(&m, &[link]).unwrap(), canonical);
        let dotted = d.path().join(".").join("libtoken.so");
        assert_eq!(check(&dotted, &[m]).unwrap(), canonical);
    }

    #[test]
    fn an_unlisted_module_is_refused_by_policy() {
        let d = private_dir();
        let m = module_in(d.path(), 0o644);
        let other = d.path().join("other.so");
        std::fs::write(&other, b"x").unwrap();
        let e = check(&m, &[other]).unwrap_err();
        assert_eq!(e.code, Code::PSM_ERR_POLICY);
        assert!(e.message.contains("not in the policy's pkcs11.modules"), "{}", e.message);
        assert_eq!(check(&m, &[]).unwrap_err().code, Code::PSM_ERR_POLICY);
        // A relative entry in the list never matches.
        let e = check(&m, &[PathBuf::from("libtoken.so")]).unwrap_err();
        assert_eq!(e.code, Code::PSM_ERR_POLICY);
    }

    #[test]
    fn relative_and_missing_paths_are_refused() {
        assert_eq!(check(Path::new("libsofthsm2.so"), &[]).unwrap_err().code, Code::PSM_ERR_INVALID_ARGUMENT);
        let missing = Path::new("/nonexistent/libpkcs11.so");
        assert_eq!(check(missing, &[missing.to_path_buf()]).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
    }

    #[test]
    fn a_module_writable_by_others_is_refused() {
        let d = private_dir();
        for mode in [0o666, 0o664, 0o646] {
            let m = module_in(d.path(), mode);
            let e = check(&m, std::slice::from_ref(&m)).unwrap_err();
            assert_eq!(e.code, Code::PSM_ERR_POLICY);
            assert!(e.message.contains("writable by its group or by others"), "{}", e.message);
        }
    }

    #[test]
    fn a_module_in_a_directory_writable_by_others_is_refused() {
        let d = private_dir();
        let sub = d.path().join("open");
        std::fs::create_dir(&sub).unwrap();
        let m = module_in(&sub, 0o644);
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check(&m, std::slice::from_ref(&m)).unwrap_err();
        assert!(e.message.contains("directory"), "{}", e.message);
        // With the sticky bit, others cannot replace the file.
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check(&m, std::slice::from_ref(&m)).unwrap();
    }
}
