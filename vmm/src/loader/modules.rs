//! Boot modules (`--initrd`, `--module`): files read whole into memory with their size bounded
//! by guest RAM before anything is allocated, and the string each is listed with.

use std::io::Read;
use std::path::PathBuf;

use firmware::layout::CMDLINE_MAX;

use super::placement::ModuleNeed;

/// Most boot modules a boot takes.
pub const MAX_MODULES: usize = 64;
/// Longest module string, without its NUL: the same bound as the kernel command line.
pub const MAX_MODULE_STRING: usize = CMDLINE_MAX - 1;

/// A boot module to load: a file and the string the kernel finds with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// The file.
    pub path: PathBuf,
    /// The module's string (its command line).
    pub string: String,
}

/// A module read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The file's bytes.
    pub data: Vec<u8>,
    /// Its string.
    pub string: String,
}

impl Module {
    /// What placing it needs.
    pub fn need(&self) -> ModuleNeed {
        ModuleNeed {
            size: self.data.len() as u64,
            string_len: self.string.len() as u64,
        }
    }
}

/// Why a boot module cannot be used. Every variant is a problem with the input.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// More than [`MAX_MODULES`].
    #[error("{0} boot modules were given; sipi takes at most {MAX_MODULES}")]
    TooMany(usize),
    /// The file cannot be read.
    #[error("cannot read boot module {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A directory.
    #[error("boot module {0} is a directory, not a file")]
    IsDirectory(String),
    /// Zero bytes.
    #[error("boot module {0} is empty")]
    Empty(String),
    /// The modules together are larger than guest memory.
    #[error("boot module {path} brings the modules to {total} bytes, more than the {mem} bytes of guest memory")]
    TooLarge { path: String, total: u64, mem: u64 },
    /// A string too long.
    #[error("the string of boot module {path} is {len} bytes, more than the {MAX_MODULE_STRING} sipi accepts")]
    StringTooLong { path: String, len: usize },
    /// A string with a NUL.
    #[error("the string of boot module {0} contains a NUL byte")]
    StringNul(String),
}

/// Reads every module of `specs`, in order, bounding their total size by `mem_size`.
pub fn read(specs: &[ModuleSpec], mem_size: u64) -> Result<Vec<Module>, ModuleError> {
    if specs.len() > MAX_MODULES {
        return Err(ModuleError::TooMany(specs.len()));
    }
    let mut total = 0u64;
    let mut modules = Vec::with_capacity(specs.len());
    for spec in specs {
        let shown = spec.path.display().to_string();
        if spec.string.len() > MAX_MODULE_STRING {
            return Err(ModuleError::StringTooLong {
                path: shown,
                len: spec.string.len(),
            });
        }
        if spec.string.as_bytes().contains(&0) {
            return Err(ModuleError::StringNul(shown));
        }
        let read_err = |source| ModuleError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(&spec.path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if meta.is_dir() {
            return Err(ModuleError::IsDirectory(shown));
        }
        let left = mem_size.saturating_sub(total);
        if meta.len() > left {
            return Err(ModuleError::TooLarge {
                path: shown,
                total: total.saturating_add(meta.len()),
                mem: mem_size,
            });
        }
        // The file may change after `metadata`: read at most one byte more than is left, so
        // that growth is seen and nothing unbounded is allocated.
        let mut data = Vec::with_capacity(meta.len() as usize);
        file.take(left.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(read_err)?;
        let len = data.len() as u64;
        if len == 0 {
            return Err(ModuleError::Empty(shown));
        }
        if len > left {
            return Err(ModuleError::TooLarge {
                path: shown,
                total: total.saturating_add(len),
                mem: mem_size,
            });
        }
        total += len;
        modules.push(Module {
            data,
            string: spec.string.clone(),
        });
    }
    Ok(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &std::path::Path) -> ModuleSpec {
        ModuleSpec {
            path: path.to_path_buf(),
            string: "s".into(),
        }
    }

    #[test]
    fn reads_modules_and_refuses_bad_ones() {
        let dir = std::env::temp_dir().join(format!("sipi-modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok");
        std::fs::write(&ok, b"hello").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        let got = read(&[spec(&ok), spec(&ok)], 10).unwrap();
        assert_eq!(got[1].data, b"hello");
        assert_eq!(
            got[1].need(),
            ModuleNeed {
                size: 5,
                string_len: 1
            }
        );
        assert!(matches!(
            read(&[spec(&ok), spec(&ok)], 9),
            Err(ModuleError::TooLarge { total: 10, .. })
        ));
        assert!(matches!(
            read(&[spec(&empty)], 10),
            Err(ModuleError::Empty(_))
        ));
        assert!(matches!(
            read(&[spec(&dir)], 10),
            Err(ModuleError::IsDirectory(_))
        ));
        assert!(matches!(
            read(&[spec(&dir.join("missing"))], 10),
            Err(ModuleError::Read { .. })
        ));
        let many = vec![spec(&ok); MAX_MODULES + 1];
        assert!(matches!(
            read(&many, 1 << 20),
            Err(ModuleError::TooMany(65))
        ));
        let mut long = spec(&ok);
        long.string = "x".repeat(MAX_MODULE_STRING + 1);
        assert!(matches!(
            read(&[long], 10),
            Err(ModuleError::StringTooLong { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
