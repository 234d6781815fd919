//! Secrets: values that never show in `Debug` or `Display`, and where each
//! one is read from.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{invalid, ConfigError};

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Secret bytes (a decoded key). Its `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(pub(super) Vec<u8>);

impl SecretBytes {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(***)")
    }
}

/// Where a secret came from, for `check-config` (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    Inline,
    File(PathBuf),
    Credential(String),
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretOrigin::Inline => f.write_str("inline (discouraged)"),
            SecretOrigin::File(p) => write!(f, "file {}", p.display()),
            SecretOrigin::Credential(c) => write!(f, "credential {c}"),
        }
    }
}

/// Where secrets are looked up; separated so tests need not touch the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct SecretEnv {
    pub credentials_directory: Option<PathBuf>,
    /// Relative `*_file` paths are resolved against this directory (the
    /// config file's own).
    pub base_dir: Option<PathBuf>,
}

impl SecretEnv {
    pub fn from_process(config_path: Option<&Path>) -> Self {
        SecretEnv {
            credentials_directory: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            base_dir: config_path.and_then(|p| p.parent().map(Path::to_path_buf)),
        }
    }
}

pub(super) fn resolve_secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    credential: Option<String>,
    env: &SecretEnv,
) -> Result<Option<(Secret, SecretOrigin)>, ConfigError> {
    let given = [inline.is_some(), file.is_some(), credential.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(invalid(
            key,
            format!("give only one of {key}, {key}_file, {key}_credential"),
        ));
    }
    let read = |path: &Path, what: String| -> Result<String, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(what.clone(), format!("cannot read {}: {e}", path.display())))?;
        // Files written with `echo` end in a newline; the plugins trim keys too.
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid(what, format!("{} is empty", path.display())));
        }
        Ok(trimmed.to_owned())
    };
    if let Some(name) = credential {
        let dir = env.credentials_directory.as_ref().ok_or_else(|| {
            invalid(
                format!("{key}_credential"),
                "$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit; to check the file by hand, set CREDENTIALS_DIRECTORY to the directory holding the credential files)",
            )
        })?;
        if name.contains('/') || name.is_empty() {
            return Err(invalid(
                format!("{key}_credential"),
                "must be a plain credential name",
            ));
        }
        let value = read(&dir.join(&name), format!("{key}_credential"))?;
        return Ok(Some((Secret(value), SecretOrigin::Credential(name))));
    }
    if let Some(path) = file {
        let path = match (&env.base_dir, path.is_relative()) {
            (Some(base), true) => base.join(path),
            _ => path,
        };
        let value = read(&path, format!("{key}_file"))?;
        return Ok(Some((Secret(value), SecretOrigin::File(path))));
    }
    if let Some(value) = inline {
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(invalid(key, "is empty"));
        }
        return Ok(Some((Secret(value), SecretOrigin::Inline)));
    }
    Ok(None)
}

/// One secret of a config table, as given: `X = "value"`, `X_file = "…"`
/// or `X_credential = "…"` (at most one of them). Every source secret is
/// read through [`RawSecret::resolve`], so the rules (one of three, trimmed,
/// never empty, relative files against the config's directory) and the
/// error keys (`sources[0].X_file`) are the same for all of them.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawSecret<'a> {
    /// `X`, the key the other two are named after.
    pub(super) name: &'static str,
    pub(super) inline: &'a Option<String>,
    pub(super) file: &'a Option<PathBuf>,
    pub(super) credential: &'a Option<String>,
}

impl RawSecret<'_> {
    /// The secret under `{key_prefix}.{name}`; `None` when none of its keys
    /// is given.
    pub(super) fn resolve(
        &self,
        key_prefix: &str,
        env: &SecretEnv,
    ) -> Result<Option<(Secret, SecretOrigin)>, ConfigError> {
        resolve_secret(
            &format!("{key_prefix}.{}", self.name),
            self.inline.clone(),
            self.file.clone(),
            self.credential.clone(),
            env,
        )
    }

    /// The secret, which must be given; `missing` says what to give.
    pub(super) fn require(
        &self,
        key_prefix: &str,
        env: &SecretEnv,
        missing: impl FnOnce() -> String,
    ) -> Result<(Secret, SecretOrigin), ConfigError> {
        self.resolve(key_prefix, env)?
            .ok_or_else(|| invalid(format!("{key_prefix}.{}", self.name), missing()))
    }
}

/// Declares a `[[sources]]` table struct: the keys every kind has, the
/// kind's own keys, and its secrets, each as the three keys `X`, `X_file`,
/// `X_credential`, read back as one [`RawSecret`] by the method `X()`.
/// `deny_unknown_fields`: a key the kind does not take is an error.
macro_rules! source_table {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty, )*
        }
        secrets { $( $secret:ident, $file:ident, $credential:ident; )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            pub(super) name: Option<String>,
            pub(super) path: String,
            pub(super) shop: Option<String>,
            pub(super) order_prefix: Option<String>,
            // confirmation (see `config/confirm.rs`)
            pub(super) confirm: Option<String>,
            $( $(#[$fmeta])* pub(super) $field: $ty, )*
            $(
                pub(super) $secret: Option<String>,
                pub(super) $file: Option<std::path::PathBuf>,
                pub(super) $credential: Option<String>,
            )*
        }

        impl $name {
            $(
                pub(super) fn $secret(&self) -> super::secrets::RawSecret<'_> {
                    super::secrets::RawSecret {
                        name: stringify!($secret),
                        inline: &self.$secret,
                        file: &self.$file,
                        credential: &self.$credential,
                    }
                }
            )*
        }
    };
}
pub(super) use source_table;
