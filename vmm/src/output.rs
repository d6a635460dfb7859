//! Output files: the console sink and the JSON report, written atomically so that no partial
//! file is left behind.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an output file cannot be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutputError {
    /// The console file cannot be opened.
    #[error("cannot open console file {0}")]
    Console(String, #[source] std::io::Error),
    /// The JSON path cannot be written.
    #[error("cannot write JSON report {0}")]
    Json(String, #[source] std::io::Error),
}

/// The console sink: `path`, or stderr.
pub(crate) fn console(path: Option<&Path>) -> Result<Box<dyn Write + Send>, OutputError> {
    match path {
        None => Ok(Box::new(std::io::stderr())),
        Some(p) => {
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(p);
            f.map(|f| Box::new(f) as Box<dyn Write + Send>)
                .map_err(|e| OutputError::Console(p.display().to_string(), e))
        }
    }
}

/// A JSON report destination, checked for writability before the VM boots.
pub(crate) struct JsonOutput {
    path: PathBuf,
    tmp: PathBuf,
}

impl JsonOutput {
    /// Checks that `path` can be written (by creating and removing its temporary file).
    pub(crate) fn prepare(path: &Path) -> Result<Self, OutputError> {
        let shown = path.display().to_string();
        if path.is_dir() {
            let e = std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a directory");
            return Err(OutputError::Json(shown, e));
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        File::create(&tmp).map_err(|e| OutputError::Json(shown.clone(), e))?;
        let _ = std::fs::remove_file(&tmp);
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
        })
    }

    /// Writes `value` to the temporary file and renames it into place.
    pub(crate) fn write(&self, value: &impl serde::Serialize) -> Result<(), OutputError> {
        let shown = self.path.display().to_string();
        let err = |e| OutputError::Json(shown.clone(), e);
        let text = serde_json::to_string_pretty(value).map_err(|e| err(e.into()))?;
        let result = std::fs::write(&self.tmp, text + "\n")
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result.map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_written_atomically_and_unwritable_paths_fail_early() {
        let dir = tempfile::tempdir().unwrap();
        assert!(JsonOutput::prepare(dir.path()).is_err());
        assert!(JsonOutput::prepare(&dir.path().join("no/such/dir/r.json")).is_err());
        let p = dir.path().join("r.json");
        let out = JsonOutput::prepare(&p).unwrap();
        assert!(
            !p.exists(),
            "nothing is left behind before the report exists"
        );
        out.write(&serde_json::json!({"online": 1})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"online\": 1"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
