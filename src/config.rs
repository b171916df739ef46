//! Every setting Skyvault reads, declared once with its type, default and meaning. Values come
//! from an optional TOML file (`--config` or `SKYVAULT_CONFIG`), then `SKYVAULT_<NAME>` environment
//! variables, which win. Unknown keys in the file and unknown `SKYVAULT_*` variables are refused at
//! start-up with a message naming them, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the settings file {path} is not valid: {message}")]
    File { path: String, message: String },
    #[error("unknown setting {0}: see the settings table in README.md")]
    UnknownVariable(String),
    #[error("setting {name} = {value:?} is not valid: {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: &'static str,
    },
}

/// One line of the settings table: used for the README and to check it stays true.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    pub name: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

trait SettingValue: Sized {
    const EXPECTED: &'static str;
    fn parse_setting(text: &str) -> Option<Self>;
}

impl SettingValue for String {
    const EXPECTED: &'static str = "text";
    fn parse_setting(text: &str) -> Option<Self> {
        Some(text.to_string())
    }
}

impl SettingValue for u16 {
    const EXPECTED: &'static str = "a whole number from 0 to 65535";
    fn parse_setting(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
}

impl SettingValue for u64 {
    const EXPECTED: &'static str = "a whole number";
    fn parse_setting(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
}

impl SettingValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn parse_setting(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        }
    }
}

macro_rules! settings {
    ($( #[doc = $doc:literal] $name:ident : $ty:ty = $default:expr, )*) => {
        /// Skyvault's settings. Empty text means "derive it" where the table says so.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $( #[doc = $doc] pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $( $name: <$ty as SettingValue>::parse_setting($default).unwrap_or_default(), )* }
            }
        }

        /// The shape of the optional TOML file: every key optional, unknown keys refused.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SettingsFile {
            $( $name: Option<$ty>, )*
        }

        impl Settings {
            pub const TABLE: &'static [SettingDoc] = &[
                $( SettingDoc {
                    name: stringify!($name),
                    env: concat!("SKYVAULT_", stringify!($name)),
                    default: $default,
                    doc: $doc,
                }, )*
            ];

            fn apply_file(&mut self, file: SettingsFile) {
                $( if let Some(value) = file.$name { self.$name = value; } )*
            }

            fn apply_variable(&mut self, name: &str, value: &str) -> Result<bool, ConfigError> {
                $(
                    if name.eq_ignore_ascii_case(stringify!($name)) {
                        self.$name = <$ty as SettingValue>::parse_setting(value).ok_or_else(|| {
                            ConfigError::Invalid {
                                name: format!("SKYVAULT_{}", stringify!($name).to_ascii_uppercase()),
                                value: value.to_string(),
                                expected: <$ty as SettingValue>::EXPECTED,
                            }
                        })?;
                        return Ok(true);
                    }
                )*
                Ok(false)
            }
        }
    };
}

settings! {
    /// Address and port the console listens on.
    bind: String = "127.0.0.1:8080",
    /// Address users reach the console at (used in links and the Microsoft consent redirect); empty: `http://<bind>`. An `https://` address makes session cookies Secure.
    public_url: String = "",
    /// Folder for the SQLite database, the master key and local backup storage.
    data_dir: String = "./data",
    /// Database: `sqlite://path?mode=rwc` or `postgres://user:password@host/db`; empty: SQLite at `<data_dir>/skyvault.sqlite`.
    database_url: String = "",
    /// File holding the master key that seals secrets in the database; empty: `<data_dir>/master.key` (created with mode 0600).
    master_key_file: String = "",
    /// Backup storage: `file:///path` or `s3://bucket/prefix`; empty: `file://<data_dir>/storage`.
    storage: String = "",
    /// S3 endpoint for `s3://` storage (e.g. a MinIO address); empty: AWS.
    s3_endpoint: String = "",
    /// S3 region for `s3://` storage.
    s3_region: String = "us-east-1",
    /// S3 access key id for `s3://` storage.
    s3_access_key_id: String = "",
    /// S3 secret access key for `s3://` storage.
    s3_secret_access_key: String = "",
    /// Minutes of inactivity after which a console session ends.
    session_idle_minutes: u64 = "720",
    /// Application (client) id of the Microsoft Entra app; empty: demo mode with the built-in simulator.
    m365_client_id: String = "",
    /// Client secret of the Microsoft Entra app.
    m365_client_secret: String = "",
    /// Expiry date (`YYYY-MM-DD`) of that client secret, as the Entra admin center shows it; Skyvault raises an alert 30 days before. Empty: not known.
    m365_client_secret_expires: String = "",
    /// Microsoft identity platform address (authority).
    m365_authority_url: String = "https://login.microsoftonline.com",
    /// Microsoft Graph address.
    m365_graph_url: String = "https://graph.microsoft.com",
    /// Port of the built-in simulator in demo mode.
    demo_simulator_port: u16 = "8081",
    /// Hours between directory syncs of an organization, counted from when it was added.
    sync_interval_hours: u64 = "24",
    /// Percentage of the backed-up data that each backup check (weekly, or Check backups now) reads and verifies, a random sample of packs; 0: structure only, 100: all of it.
    check_read_percent: u64 = "10",
    /// Jobs (backups, syncs, retention, checks) one worker process runs at once, 1 to 64.
    worker_concurrency: u64 = "4",
    /// Log filter (tracing `EnvFilter` syntax).
    log: String = "info",
}

impl Settings {
    /// Reads the optional file, then the `SKYVAULT_*` variables of this process.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    pub fn load_from(
        file: Option<&Path>,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: shown.clone(),
                source,
            })?;
            let parsed: SettingsFile = toml::from_str(&text).map_err(|err| ConfigError::File {
                path: shown,
                message: err.message().to_string(),
            })?;
            settings.apply_file(parsed);
        }
        for (name, value) in variables {
            let Some(setting) = name.strip_prefix("SKYVAULT_") else {
                continue;
            };
            // Variables that are not settings: the file's own location and the test suite's knobs.
            if setting == "CONFIG" || setting.starts_with("TEST_") {
                continue;
            }
            if !settings.apply_variable(setting, &value)? {
                return Err(ConfigError::UnknownVariable(name));
            }
        }
        Ok(settings)
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.data_dir)
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir().join("skyvault.sqlite").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    pub fn master_key_file(&self) -> PathBuf {
        if self.master_key_file.is_empty() {
            self.data_dir().join("master.key")
        } else {
            PathBuf::from(&self.master_key_file)
        }
    }

    pub fn storage(&self) -> String {
        if self.storage.is_empty() {
            let absolute = std::path::absolute(self.data_dir().join("storage"))
                .unwrap_or_else(|_| self.data_dir().join("storage"));
            format!("file://{}", absolute.display())
        } else {
            self.storage.clone()
        }
    }

    pub fn public_url(&self) -> String {
        let url = if self.public_url.is_empty() {
            format!("http://{}", self.bind)
        } else {
            self.public_url.clone()
        };
        url.trim_end_matches('/').to_string()
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// The client secret's expiry date, when set; a value that is not a date is refused.
    pub fn client_secret_expires(&self) -> Result<Option<chrono::NaiveDate>, ConfigError> {
        let text = self.m365_client_secret_expires.trim();
        if text.is_empty() {
            return Ok(None);
        }
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ConfigError::Invalid {
                name: "m365_client_secret_expires".into(),
                value: text.into(),
                expected: "a date like 2027-03-31",
            })
    }

    /// No Microsoft app configured: the console runs against the built-in simulator.
    pub fn demo_mode(&self) -> bool {
        self.m365_client_id.is_empty()
    }

    /// The README's settings table, generated from the declarations above.
    pub fn markdown_table() -> String {
        let mut out = String::from(
            "| setting | environment variable | default | meaning |\n|---|---|---|---|\n",
        );
        for row in Self::TABLE {
            let default = if row.default.is_empty() {
                "(empty)".to_string()
            } else {
                format!("`{}`", row.default)
            };
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                row.name,
                row.env.to_ascii_uppercase(),
                default,
                row.doc.trim()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skyvault.toml");
        std::fs::write(&file, "bind = \"0.0.0.0:9000\"\nsync_interval_hours = 6\n").unwrap();
        let settings =
            Settings::load_from(Some(&file), vars(&[("SKYVAULT_SYNC_INTERVAL_HOURS", "2")]))
                .unwrap();
        assert_eq!(settings.bind, "0.0.0.0:9000");
        assert_eq!(settings.sync_interval_hours, 2);
        assert_eq!(settings.m365_graph_url, "https://graph.microsoft.com");
    }

    #[test]
    fn unknown_keys_and_variables_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skyvault.toml");
        std::fs::write(&file, "bnid = \"x\"\n").unwrap();
        let err = Settings::load_from(Some(&file), vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bnid"), "{err}");
        let err = Settings::load_from(None, vars(&[("SKYVAULT_DATABSE_URL", "x")])).unwrap_err();
        assert!(err.to_string().contains("SKYVAULT_DATABSE_URL"));
    }

    #[test]
    fn bad_number_names_the_variable() {
        let err = Settings::load_from(None, vars(&[("SKYVAULT_DEMO_SIMULATOR_PORT", "eighty")]))
            .unwrap_err();
        assert!(err.to_string().contains("SKYVAULT_DEMO_SIMULATOR_PORT"));
    }

    #[test]
    fn readme_settings_table_matches_the_declarations() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        assert!(
            readme.contains(&Settings::markdown_table()),
            "README.md's settings table is out of date; paste `skyvault settings-table` output:\n{}",
            Settings::markdown_table()
        );
    }
}
